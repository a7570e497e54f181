"""Create or drop one PostgreSQL database for a CI run: `postgres.py SERVER_URL create|drop NAME`."""

import asyncio
import re
import sys

import asyncpg


async def main(server_url: str, action: str, name: str) -> None:
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise SystemExit(f"refusing database name {name!r}")
    connection = await asyncpg.connect(f"{server_url}/postgres")
    try:
        if action == "create":
            await connection.execute(f'CREATE DATABASE "{name}"')
        else:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
