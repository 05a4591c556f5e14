-- POST /v1/scan with the APK of $APK (raw body).
package.path = package.path .. ";" .. (os.getenv("BENCH_DIR") or ".") .. "/?.lua"
local c = require("common")
local f = assert(io.open(os.getenv("APK") or "bench10m.apk", "rb"))
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.path = "/v1/scan"
wrk.body = body
wrk.headers["Content-Type"] = "application/vnd.android.package-archive"
wrk.headers["Authorization"] = "Bearer " .. c.key()
done = c.done
