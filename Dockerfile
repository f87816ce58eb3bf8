FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pro_service ./pro_service
COPY workers ./workers
COPY alerts ./alerts
COPY config ./config
RUN pip install --no-cache-dir . && useradd --system --uid 10001 pro
USER pro
EXPOSE 8000
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "pro_service.wsgi:app"]
