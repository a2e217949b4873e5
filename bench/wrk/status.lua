-- GET /api/tasks/status/{id}, the id drawn uniformly at random per request from the file
-- named by $AIPALQ_BENCH_IDS (one task id a line, rows that exist).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("thread_no", nthreads)
end

local paths = {}
function init(args)
  local file = os.getenv("AIPALQ_BENCH_IDS") or "ids.txt"
  for id in io.lines(file) do
    if #id > 0 then
      paths[#paths + 1] = "/api/tasks/status/" .. id
    end
  end
  assert(#paths > 0, "no task ids in " .. file)
  math.randomseed(os.time() + 1000003 * (thread_no or 0))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
