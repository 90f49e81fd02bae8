"""The peer of the Apideck client-overhead bench: a small asyncio + aiohttp importer doing the
same imports as authport (one consumer listing, then one POST .../import per record), with
CONCURRENCY workers over one keep-alive connection pool. Prints one JSON object.

usage: apideck_import.py BASE_URL INPUT.jsonl CONCURRENCY
"""

import asyncio
import json
import sys
import time

import aiohttp

API_KEY = "bench-apideck-key"
APP_ID = "bench-app"


def body_of(record):
    auth = record["auth"]
    credentials = {
        key: auth[key]
        for key in ("access_token", "refresh_token", "expires_at")
        if key in auth
    }
    return {"credentials": credentials, "metadata": {"authport_record_id": record["id"]}}


async def worker(session, base, queue, results):
    while True:
        line = await queue.get()
        if line is None:
            return
        record = json.loads(line)
        target = record["targets"]["apideck"]
        url = f"{base}/vault/connections/{target['unified_api']}/{target['service_id']}/import"
        headers = {"x-apideck-consumer-id": record["owner"]["id"]}
        async with session.post(url, json=body_of(record), headers=headers) as answer:
            await answer.read()
            results["ok" if answer.status == 200 else "failed"] += 1


async def main(base, path, concurrency):
    headers = {"Authorization": f"Bearer {API_KEY}", "x-apideck-app-id": APP_ID}
    connector = aiohttp.TCPConnector(limit=concurrency)
    results = {"ok": 0, "failed": 0}
    started = time.monotonic()
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        async with session.get(f"{base}/vault/consumers", params={"limit": "200"}) as answer:
            await answer.read()
        queue = asyncio.Queue(maxsize=concurrency * 4)
        workers = [
            asyncio.create_task(worker(session, base, queue, results))
            for _ in range(concurrency)
        ]
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                await queue.put(line)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    seconds = time.monotonic() - started
    total = results["ok"] + results["failed"]
    print(json.dumps({**results, "seconds": seconds, "records_per_second": total / seconds}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
