FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY service ./service
COPY bench ./bench
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["jobstream"]
