"""Prints where everything runs and how to log in, from seed_demo's JSON."""

import json
import os
import sys

seed = json.loads(sys.argv[1])
base = os.environ.get("API_BASE_URL", "http://127.0.0.1:8000")
demo = seed["merchants"]["demo"]
print(f"""
================================================================================
 Payments platform is starting (Ctrl-C stops every process)

 API base URL      {base}/v1/
 API docs          {base}/docs/        OpenAPI: {base}/v1/openapi.json
 Admin             {base}/admin/
 PSP simulator     {os.environ.get("SIMULATOR_URL", "http://127.0.0.1:8090")}/_sim/health

 Demo merchant     {demo["name"]} ({demo["id"]})
   secret key      {demo["secret"]}
   publishable key {demo["publishable"]}

 Admin logins (username / password)""")
for role, password in seed["staff"].items():
    print(f"   {role:<15} {role} / {password}")
print(f"""
 Try it:
   curl -s {base}/v1/account -H "Authorization: Bearer {demo["secret"]}"
================================================================================
""")
