-- POST /api/tasks/ffe/plan-goal (the seed's endpoint) with one fixed TaskSubmitRequest,
-- the same goal as ../shared/bench's seedapi submits (its unknown "deadline" field left
-- out: this API refuses unknown parameters).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"task_type":"plan_ffe_goal","priority":5,"parameters":{"goal_id":"goal-4f1c2b9e",' ..
  '"user_id":"user-1042","goal_description":"Learn conversational Spanish well enough ' ..
  'for a two-week trip to Madrid","complexity_level":"medium"}}'
