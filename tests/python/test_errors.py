"""Every aipalq_status code maps to its exception class, with the library's
message; the errors the C library reports through the bindings arrive as
those classes."""

from __future__ import annotations

import os
import unittest

import support  # noqa: F401  (puts bindings/python on sys.path)
import aipalq
from aipalq import _lib, errors

EXPECTED = {
    2: ("EINVAL", aipalq.InvalidArgument),
    3: ("EBADJSON", aipalq.BadJSON),
    4: ("ENOTOBJECT", aipalq.NotAnObject),
    5: ("EPRIORITY", aipalq.InvalidPriority),
    6: ("EUNKNOWNTYPE", aipalq.UnknownTaskType),
    7: ("ETOOBIG", aipalq.TooBig),
    8: ("EBADURL", aipalq.BadURL),
    9: ("EREDIS", aipalq.RedisError),
    10: ("EPG", aipalq.DatabaseError),
    11: ("ENOTFOUND", aipalq.NotFound),
    12: ("EILLEGAL", aipalq.IllegalTransition),
    13: ("ESTALE", aipalq.StaleDelivery),
    14: ("ESCHEMA", aipalq.SchemaError),
    15: ("ENOMEM", aipalq.OutOfMemory),
    16: ("ETIMEOUT", aipalq.Timeout),
    17: ("EMISUSE", aipalq.Misuse),
    18: ("EBADID", aipalq.BadTaskId),
    19: ("EQUEUE", aipalq.InvalidQueue),
    20: ("ESHUTDOWN", aipalq.ShuttingDown),
    21: ("EHANDLER", aipalq.NoHandler),
}


class StatusMapping(unittest.TestCase):
    """No servers needed."""

    def test_every_error_code_has_its_class(self):
        for status, (name, cls) in EXPECTED.items():
            with self.subTest(name=name):
                self.assertEqual(aipalq.status_name(status), name)
                e = aipalq.error_for(status, "the message")
                self.assertIs(type(e), cls)
                self.assertIsInstance(e, aipalq.AipalqError)
                self.assertEqual(e.status, status)
                self.assertEqual(e.code, name)
                self.assertEqual(str(e), "the message")
                self.assertEqual(e.message, "the message")
                self.assertEqual(cls.status, status)  # also when raised by Python code
                self.assertEqual(cls.code, name)

    def test_library_has_no_code_the_bindings_miss(self):
        # The first unassigned number after the list gives "UNKNOWN".
        for status in range(2, 64):
            name = aipalq.status_name(status)
            if name == "UNKNOWN":
                break
            self.assertIn(status, EXPECTED, f"status {status} ({name}) has no exception class")
            self.assertEqual(errors._NAMES[status], name)

    def test_empty_message_falls_back_to_strerror(self):
        e = aipalq.error_for(11)
        self.assertEqual(str(e), "no task with that id")

    def test_unknown_code_is_base_class(self):
        e = aipalq.error_for(250, "future")
        self.assertIs(type(e), aipalq.AipalqError)
        self.assertEqual(e.status, 250)

    def test_hierarchy(self):
        for cls in (aipalq.BadJSON, aipalq.NotAnObject, aipalq.InvalidPriority, aipalq.UnknownTaskType,
                    aipalq.TooBig, aipalq.BadTaskId, aipalq.InvalidQueue, aipalq.BadURL):
            self.assertTrue(issubclass(cls, aipalq.InvalidArgument), cls)
            self.assertTrue(issubclass(cls, ValueError), cls)
        for cls in (aipalq.RedisError, aipalq.DatabaseError):
            self.assertTrue(issubclass(cls, aipalq.ServiceError))
            self.assertTrue(issubclass(cls, ConnectionError))
        self.assertTrue(issubclass(aipalq.NotFound, LookupError))
        self.assertTrue(issubclass(aipalq.Timeout, TimeoutError))
        self.assertTrue(issubclass(aipalq.LibraryNotFoundError, ImportError))
        self.assertFalse(issubclass(aipalq.PermanentError, aipalq.AipalqError))
        # An OSError subclass built with one argument keeps it as its message.
        e = aipalq.error_for(9, "Redis: connection refused")
        self.assertEqual(str(e), "Redis: connection refused")
        self.assertEqual(e.args, ("Redis: connection refused",))

    def test_state_names_match_the_library(self):
        lib = _lib.load()
        for state in aipalq.State:
            self.assertEqual(_lib.text(lib.aipalq_state_name(state.number)), state.value)
        self.assertTrue(aipalq.transition_allowed("pending", "running"))
        self.assertFalse(aipalq.transition_allowed("completed", "running"))


class ErrorsFromTheLibrary(support.ServiceTest):
    """The C library's own errors, provoked for real."""

    def setUp(self):
        super().setUp()
        self.client.define_type("err", "errq")

    def assertRaisesCode(self, cls, fn, *args, contains="", **kw):
        with self.assertRaises(cls) as cm:
            fn(*args, **kw)
        self.assertIs(type(cm.exception), cls)
        self.assertTrue(cm.exception.message, "the library's message is kept")
        if contains:
            self.assertIn(contains, str(cm.exception))
        return cm.exception

    def test_enqueue_errors(self):
        c = self.client
        self.assertRaisesCode(aipalq.UnknownTaskType, c.enqueue, "nosuchtype", {})
        self.assertRaisesCode(aipalq.BadJSON, c.enqueue, "err", '{"a":')
        self.assertRaisesCode(aipalq.BadJSON, c.enqueue, "err", {"x": float("nan")})
        self.assertRaisesCode(aipalq.NotAnObject, c.enqueue, "err", [1, 2])
        self.assertRaisesCode(aipalq.NotAnObject, c.enqueue, "err", "42")
        self.assertRaisesCode(aipalq.TooBig, c.enqueue, "err", {"x": "y" * aipalq.MAX_PARAMS_BYTES})
        self.assertRaisesCode(aipalq.InvalidPriority, c.enqueue, "err", {}, priority=0, contains="priority")
        self.assertRaisesCode(aipalq.InvalidPriority, c.enqueue, "err", {}, priority=11)
        self.assertRaisesCode(aipalq.InvalidQueue, c.enqueue, "err", {}, queue="no spaces")
        self.assertRaisesCode(aipalq.InvalidArgument, c.enqueue, "err", {}, max_retries=5000)
        self.assertRaisesCode(aipalq.InvalidArgument, c.enqueue, "err", {}, idempotency_key="k" * 500)
        self.assertRaisesCode(aipalq.InvalidArgument, c.enqueue, "err", {}, delay=-1)
        # Nothing half-written: no task of the type exists.
        self.assertEqual(c.list(type="err").total, 0)

    def test_batch_error_names_the_index_and_writes_nothing(self):
        c = self.client
        e = self.assertRaisesCode(aipalq.NotAnObject, c.enqueue_many, [("err", {"ok": 1}), ("err", [1])])
        self.assertIn("1", str(e))
        e = self.assertRaisesCode(aipalq.InvalidPriority, c.enqueue_many, [("err", {}), {"type": "err", "priority": 99}])
        self.assertIn("tasks[1]", str(e))
        self.assertRaisesCode(aipalq.UnknownTaskType, c.enqueue_many, [("err", {}), ("nosuchtype", {})])
        self.assertEqual(c.list(type="err").total, 0)

    def test_record_errors(self):
        c = self.client
        self.assertRaisesCode(aipalq.BadTaskId, c.get, "not-a-uuid")
        self.assertRaisesCode(aipalq.BadTaskId, c.cancel, "x")
        self.assertRaisesCode(aipalq.BadTaskId, c.retry, "")
        missing = "01900000-0000-7000-8000-000000000000"
        self.assertRaisesCode(aipalq.NotFound, c.get, missing, contains=missing)
        self.assertRaisesCode(aipalq.NotFound, c.cancel, missing)
        self.assertRaisesCode(aipalq.NotFound, c.retry, missing)
        tid = c.enqueue("err", {})
        self.assertRaisesCode(aipalq.IllegalTransition, c.retry, tid)  # pending
        self.assertEqual(c.cancel(tid), aipalq.State.CANCELLED)
        self.assertRaisesCode(aipalq.IllegalTransition, c.cancel, tid)  # already cancelled
        self.assertRaisesCode(aipalq.InvalidArgument, c.list, limit=0)
        self.assertRaisesCode(aipalq.InvalidQueue, c.queue_depth, "bad queue")
        self.assertRaises(ValueError, c.list, state="nonsense")

    def test_type_errors(self):
        c = self.client
        self.assertRaisesCode(aipalq.InvalidQueue, c.define_type, "t1", "bad queue")
        self.assertRaisesCode(aipalq.InvalidArgument, c.define_type, "bad name!", "q")
        self.assertRaisesCode(aipalq.InvalidPriority, c.define_type, "t1", "q", priority=42)
        self.assertRaisesCode(aipalq.InvalidArgument, c.define_type, "t1", "q", max_retries=-1)
        self.assertRaisesCode(aipalq.InvalidArgument, c.define_types, [{"name": "x", "queue": "q", "priority": "high"}],
                              contains="priority")
        self.assertRaisesCode(aipalq.InvalidArgument, c.define_types, [{"name": "x", "queue": "q"}, 3])
        # All or nothing: "x" was not defined by the failed calls.
        self.assertNotIn("x", [t["name"] for t in c.types()])

    def test_client_configuration_errors(self):
        self.assertRaisesCode(aipalq.InvalidArgument, aipalq.Client, namespace="bad namespace!")
        self.assertRaisesCode(aipalq.InvalidArgument, self.client.set_timeouts, 0, 10)

    def test_bad_url(self):
        with aipalq.Client("rediss://127.0.0.1:1/0", os.environ["AIPALQ_DATABASE_URL"]) as c:
            self.assertRaisesCode(aipalq.BadURL, c.connect, contains="rediss")
            h = c.ping()
            self.assertFalse(h)
            self.assertIn("rediss", h.error)

    def test_unreachable_redis(self):
        with aipalq.Client("redis://127.0.0.1:1/0", os.environ["AIPALQ_DATABASE_URL"],
                           connect_timeout=1, namespace=self.ns) as c:
            e = self.assertRaisesCode(aipalq.RedisError, c.connect)
            self.assertIsInstance(e, ConnectionError)
            self.assertRaisesCode(aipalq.RedisError, c.queue_depth, "q")
            h = c.ping()
            self.assertFalse(h.redis)
            self.assertTrue(h.database)

    def test_unreachable_database(self):
        url = "postgresql://aipalq@127.0.0.1:1/aipalq?connect_timeout=1"
        with aipalq.Client(os.environ["AIPALQ_REDIS_URL"], url, namespace=self.ns) as c:
            self.assertRaisesCode(aipalq.DatabaseError, c.migrate)
            self.assertRaisesCode(aipalq.DatabaseError, c.get, "01900000-0000-7000-8000-000000000000")
            c.define_type("err", "errq")
            self.assertRaisesCode(aipalq.DatabaseError, c.enqueue, "err", {})
            h = c.ping()
            self.assertTrue(h.redis)
            self.assertFalse(h.database)

    def test_schema_newer_than_the_library(self):
        url = support.create_db("schema")
        self.addCleanup(support.drop_db, url)
        with aipalq.Client(None, url, namespace=self.ns) as c:
            c.migrate()
            self.assertEqual(c.schema_version(), support.SCHEMA_VERSION)
            support.sql(url, "INSERT INTO aipalq_schema (version) VALUES (99)")
            self.assertRaisesCode(aipalq.SchemaError, c.migrate, contains="99")

    def test_closed_client_is_misuse(self):
        c = support.client()
        c.close()
        c.close()  # idempotent
        self.assertTrue(c.closed)
        self.assertRaisesCode(aipalq.Misuse, c.enqueue, "err", {})
        self.assertRaisesCode(aipalq.Misuse, c.get, "01900000-0000-7000-8000-000000000000")

    def test_wait_timeout(self):
        tid = self.client.enqueue("err", {})  # no worker for errq
        e = self.assertRaisesCode(aipalq.Timeout, self.client.wait, tid, 0.2)
        self.assertIsInstance(e, TimeoutError)
        self.assertIn("pending", str(e))


if __name__ == "__main__":
    unittest.main()
