# motionhub server image. PyAV and OpenCV wheels bundle FFmpeg, so no system codecs are needed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY detector detector
COPY server server
COPY clients clients
RUN pip install -c constraints.txt . \
 && useradd --system --uid 1000 motionhub \
 && mkdir -p /media \
 && install -d -m 700 -o motionhub /data
USER motionhub
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["motionhub", "serve", "--config", "/config/motionhub.yml"]
