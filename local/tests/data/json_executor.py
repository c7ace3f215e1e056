#!/usr/bin/env python3
"""A v1 HTTP executor in JSON using only the standard library (for the master tests).

On LAUNCH it reports TASK_RUNNING; tasks whose id contains "long" then run until
KILL (TASK_KILLED), tasks whose data is the JSON {"sleep": <seconds>} finish
(TASK_FINISHED) that long after, others finish at once (TASK_FINISHED). A scheduler
MESSAGE is echoed back as an executor MESSAGE. SHUTDOWN kills what runs and exits 0.
"""
import base64, http.client, json, os, sys, threading, uuid

host, port = os.environ["MESOS_AGENT_ENDPOINT"].rsplit(":", 1)
fid = os.environ["MESOS_FRAMEWORK_ID"]
eid = os.environ["MESOS_EXECUTOR_ID"]
running = set()


def call(body):
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    c.request("POST", "/api/v1/executor", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()


def sleep_of(task):
    try:
        return float(json.loads(base64.b64decode(task.get("data", "")))["sleep"])
    except (ValueError, KeyError, TypeError):
        return None


def finish_later(tid):
    if tid in running:
        running.discard(tid)
        update(tid, "TASK_FINISHED")


def update(task_id, state):
    call({"type": "UPDATE", "framework_id": {"value": fid}, "executor_id": {"value": eid},
          "update": {"status": {"task_id": {"value": task_id}, "state": state,
                                "source": "SOURCE_EXECUTOR", "executor_id": {"value": eid},
                                "uuid": base64.b64encode(uuid.uuid4().bytes).decode()}}})


conn = http.client.HTTPConnection(host, int(port))
conn.request("POST", "/api/v1/executor", json.dumps({
    "type": "SUBSCRIBE", "framework_id": {"value": fid}, "executor_id": {"value": eid},
    "subscribe": {"unacknowledged_tasks": [], "unacknowledged_updates": []}}),
    {"Content-Type": "application/json", "Accept": "application/json"})
resp = conn.getresponse()
if resp.status != 200:
    sys.exit(1)
buf = b""
while True:
    chunk = resp.read1(65536)
    if not chunk:
        sys.exit(0)
    buf += chunk
    while b"\n" in buf:
        n, rest = buf.split(b"\n", 1)
        size = int(n)
        if len(rest) < size:
            break
        record, buf = rest[:size], rest[size:]
        event = json.loads(record)
        kind = event.get("type")
        if kind == "LAUNCH":
            task = event["launch"]["task"]
            tid = task["task_id"]["value"]
            update(tid, "TASK_RUNNING")
            sleep = sleep_of(task)
            if "long" in tid:
                running.add(tid)
            elif sleep is not None:
                running.add(tid)
                timer = threading.Timer(sleep, finish_later, [tid])
                timer.daemon = True
                timer.start()
            else:
                update(tid, "TASK_FINISHED")
        elif kind == "KILL":
            tid = event["kill"]["task_id"]["value"]
            running.discard(tid)
            update(tid, "TASK_KILLED")
        elif kind == "MESSAGE":
            call({"type": "MESSAGE", "framework_id": {"value": fid}, "executor_id": {"value": eid},
                  "message": {"data": event["message"]["data"]}})
        elif kind == "SHUTDOWN":
            for tid in list(running):
                update(tid, "TASK_KILLED")
            sys.exit(0)
