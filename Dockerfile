# Twin market's image: the backend (`twin serve`, the default command) and the LLM proxy node
# (`twin proxy serve`), as infra/ runs them. Build it from the checkout, tagged as infra/ names it:
#   docker build -t twin-market:0.1.0 .
# Both stages use Debian's Python 3.11 image; the final one has no compiler, no npm and no sources
# beyond the installed wheel, and runs as an unprivileged user.

FROM python:3.11-slim-bookworm AS builder
# Node.js and npm install the pinned npm packages and run solc-js to check the contract artifacts.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY pyproject.toml setup.py MANIFEST.in constraints.txt README.md alembic.ini ./
COPY app app
COPY frontend frontend
COPY contracts contracts
COPY migrations migrations
# The wheel carries frontend/, contracts/ and migrations/ as package data (see app/resources.py).
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/twin \
    && /opt/twin/bin/pip install --no-cache-dir -c constraints.txt /wheels/*.whl
# The committed artifacts must be what the pinned compiler makes of the sources.
RUN NODE_PATH=/src/node_modules TWIN_NODE_MODULES_DIR=/src/node_modules /opt/twin/bin/twin contracts build --check

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 --user-group twin
COPY --from=builder /opt/twin /opt/twin
# The npm packages the app runs (anvil, for the embedded chain) and serves (ethers, uPlot); solc-js and
# OpenZeppelin only build contracts, which the builder did.
COPY --from=builder /src/node_modules/@foundry-rs /app/node_modules/@foundry-rs
COPY --from=builder /src/node_modules/ethers /app/node_modules/ethers
COPY --from=builder /src/node_modules/uplot /app/node_modules/uplot
WORKDIR /app
# var/ holds the embedded defaults' SQLite database and chain state (production sets its own URLs).
RUN mkdir var && chown twin:twin var
USER 10001
ENV PATH=/opt/twin/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TWIN_NODE_MODULES_DIR=/app/node_modules \
    TWIN_HOST=0.0.0.0
EXPOSE 8000 8402
ENTRYPOINT ["twin"]
CMD ["serve"]
