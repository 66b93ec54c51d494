# The container-image deployment (target/sam/template-image.json): both functions, ONNX Runtime
# and the model in one image, so a cold start copies nothing from S3 (an image may be 10 GB; a
# zip and its layers only 250 MB unzipped). Not built on the project's machines (no Docker
# there); checked by checkov in `make test`.
#
#   scripts/package-lambda.sh arm64        # target/lambda/{ingest,search}/bootstrap + ONNX Runtime
#   docker build --platform linux/arm64 --build-arg MODEL_DIR=models/clip-vit-base-patch32 -t clipsearch .
#
# Each function picks its binary with ImageConfig.Command (ingest or search).
FROM public.ecr.aws/lambda/provided:al2023

ARG MODEL_DIR=models/clip-vit-base-patch32

COPY target/lambda-layer/onnxruntime/lib/ /opt/lib/
COPY target/lambda/ingest/bootstrap /var/task/ingest
COPY target/lambda/search/bootstrap /var/task/search
COPY ${MODEL_DIR}/ /opt/model/

# provided.al2023 starts /var/runtime/bootstrap with the function's command in _HANDLER.
RUN printf '#!/bin/sh\nexec "/var/task/$_HANDLER"\n' > /var/runtime/bootstrap \
 && chmod 0755 /var/runtime/bootstrap /var/task/ingest /var/task/search

ENV ORT_DYLIB_PATH=/opt/lib/libonnxruntime.so.1.31.1 \
    CLIPSEARCH_MODEL_DIR=/opt/model

# Lambda runs the container as its own unprivileged user and has no health checks.
# checkov:skip=CKV_DOCKER_2: Lambda ignores HEALTHCHECK; it drives the runtime API itself
# checkov:skip=CKV_DOCKER_3: Lambda ignores USER and runs every image as an unprivileged user
CMD ["search"]
