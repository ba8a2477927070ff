#!/usr/bin/env bash
# Screenshot of a `hpctrain train --trace FILE` timeline in a real trace viewer: catapult's
# trace viewer (the one behind chrome://tracing), made into one self-contained HTML file by
# catapult's tracing/bin/trace2html and rendered by headless Chromium. docs/trace-4-ranks.png
# was made with this script.
#
#   benchmarks/trace_screenshot.sh TRACE.json OUT.png [--select NAME:RANK:STEP] [--size WxH]
#                                  [--html KEEP.html]
#
#   --select  select that slice (e.g. compute:2:17, rank 2's compute of step 17) so the
#             viewer's analysis panel below the tracks shows its start, duration and args
#   --size    viewport in CSS pixels (default 1600x620)
#   --html    keep trace2html's page there (4 MB: the viewer with the trace inside; it opens
#             in any browser, with the viewer's zoom and selection); else it is deleted
#
# Needs: python3; a catapult checkout in $CATAPULT (default ~/catapult; only tracing/,
# third_party/ and common/ are used; e.g. `git clone https://github.com/catapult-project/catapult`);
# Chromium or Chrome ($CHROMIUM, else the first of chromium, chromium-browser,
# google-chrome, google-chrome-stable on PATH; Debian: `apt-get install chromium`).
# Works offline.
#
# Chromium's own --screenshot flag is not used: even with --virtual-time-budget=60000 or
# --timeout it captured the viewer's "Importing..." dialog (the viewer imports in small tasks
# on idle callbacks and animation frames). Instead Chromium is driven over --remote-debugging-pipe (the DevTools protocol,
# python3's standard library only): wait until the viewer has its model, then capture.
set -euo pipefail

usage() { echo "usage: $0 TRACE.json OUT.png [--select NAME:RANK:STEP] [--size WxH] [--html KEEP.html]" >&2; exit 2; }
[ $# -ge 2 ] || usage
trace=$1 out=$2
shift 2
select="" size="1600x620" html=""
while [ $# -gt 0 ]; do
    case $1 in
        --select) [ $# -ge 2 ] || usage; select=$2; shift 2 ;;
        --size) [ $# -ge 2 ] || usage; size=$2; shift 2 ;;
        --html) [ $# -ge 2 ] || usage; html=$2; shift 2 ;;
        *) usage ;;
    esac
done
[[ $size =~ ^[0-9]+x[0-9]+$ ]] || { echo "$0: --size must be WxH, e.g. 1600x620" >&2; exit 2; }
[ -z "$select" ] || [[ $select =~ ^[^:]+:[0-9]+:[0-9]+$ ]] ||
    { echo "$0: --select must be NAME:RANK:STEP, e.g. compute:2:17" >&2; exit 2; }
[ -f "$trace" ] || { echo "$0: no trace file $trace" >&2; exit 2; }

catapult=${CATAPULT:-$HOME/catapult}
trace2html=$catapult/tracing/bin/trace2html
if [ ! -f "$trace2html" ] || [ ! -d "$catapult/third_party/polymer" ] ||
        [ ! -d "$catapult/common/py_vulcanize" ]; then
    echo "$0: no catapult checkout at $catapult (need its tracing/, third_party/, common/):" >&2
    echo "    git clone https://github.com/catapult-project/catapult ~/catapult, or set CATAPULT" >&2
    exit 1
fi
chromium=${CHROMIUM:-}
if [ -z "$chromium" ]; then
    for c in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$c" >/dev/null; then chromium=$c; break; fi
    done
fi
if [ -z "$chromium" ] || ! command -v "$chromium" >/dev/null; then
    echo "$0: no Chromium/Chrome found (apt-get install chromium, or set CHROMIUM)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -n "$html" ] || html=$work/trace.html
python3 "$trace2html" --quiet --title "$(basename "$trace")" --output "$html" "$trace"

TRACE_SHOT_WORK=$work python3 - "$chromium" "$html" "$out" "$size" "$select" <<'EOF'
import base64, json, os, subprocess, sys, time

chromium, html, out, size, select = sys.argv[1:]
width, height = (int(v) for v in size.split("x"))
cmd_r, cmd_w = os.pipe()  # our commands: Chromium reads them on fd 3
res_r, res_w = os.pipe()  # its answers: Chromium writes them on fd 4
profile = os.path.join(os.environ["TRACE_SHOT_WORK"], "profile")


def child_fds():
    a, b = os.dup(cmd_r), os.dup(res_w)  # dup2 onto 3 and 4 leaves them inheritable
    os.dup2(a, 3)
    os.dup2(b, 4)


browser = subprocess.Popen(
    [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
     f"--window-size={width},{height}", "--remote-debugging-pipe",
     f"--user-data-dir={profile}", "--no-first-run", "about:blank"],
    preexec_fn=child_fds, close_fds=False, stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL)
os.close(cmd_r)
os.close(res_w)
pending, last_id = b"", 0


def send(method, params=None, session=None):
    global pending, last_id
    last_id += 1
    msg = {"id": last_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    os.write(cmd_w, json.dumps(msg).encode() + b"\0")
    while True:
        while b"\0" not in pending:
            chunk = os.read(res_r, 1 << 20)
            if not chunk:
                sys.exit("trace_screenshot: Chromium closed the DevTools pipe")
            pending += chunk
        raw, pending = pending.split(b"\0", 1)
        reply = json.loads(raw)
        if reply.get("id") == last_id:
            if "error" in reply:
                sys.exit(f"trace_screenshot: {method}: {reply['error']}")
            return reply["result"]


def evaluate(session, expression):
    r = send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
    if "exceptionDetails" in r:
        sys.exit(f"trace_screenshot: {r['exceptionDetails']}")
    return r["result"].get("value")


try:
    target = send("Target.createTarget", {"url": "about:blank"})["targetId"]
    s = send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    send("Emulation.setDeviceMetricsOverride",
         {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, s)
    send("Page.navigate", {"url": "file://" + os.path.abspath(html)}, s)
    deadline = time.time() + 120
    while not evaluate(s, "typeof g_timelineViewEl !== 'undefined' && "
                          "!!g_timelineViewEl.model"):
        if time.time() > deadline:
            sys.exit("trace_screenshot: the viewer did not finish importing in 120 s")
        time.sleep(0.25)
    if select:
        name, rank, step = select.split(":")
        found = evaluate(s, f"""(() => {{
            const m = g_timelineViewEl.model;
            for (const t of m.getAllThreads()) {{
                if (t.tid !== {int(rank)}) continue;
                for (const e of t.sliceGroup.slices) {{
                    if (e.title === {json.dumps(name)} && e.args.step === {int(step)}) {{
                        g_timelineViewEl.brushingStateController
                            .changeSelectionFromTimeline(new tr.model.EventSet([e]));
                        return true;
                    }}
                }}
            }}
            return false;
        }})()""")
        if not found:
            sys.exit(f"trace_screenshot: no slice {name!r} of step {step} on rank {rank}")
    time.sleep(1.5)  # let the tracks and the analysis panel draw
    png = send("Page.captureScreenshot", {"format": "png"}, s)["data"]
    with open(out, "wb") as f:
        f.write(base64.b64decode(png))
finally:
    try:
        send("Browser.close")
    except SystemExit:
        pass
    try:
        browser.wait(timeout=10)
    except subprocess.TimeoutExpired:
        browser.kill()
print(out)
EOF
