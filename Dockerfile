# The image every component of the compiled pipeline runs in (kubeflow_runner.py --image), and the
# Beam workers' SDK container on Dataflow, Flink or Spark: TFX 1.16.0 with this project installed,
# so that the module paths the pipeline spec names (trainer_module.run.run_fn,
# components.blessing_gate.Executor, ...) import, and with the project files the default config reads
# (schema/, data/) at /mmoe, where kubeflow_runner.py points them.
# Build and push: make image IMAGE=gcr.io/PROJECT/mmoe:TAG
ARG TFX_IMAGE=tensorflow/tfx:1.16.0
FROM ${TFX_IMAGE}

# Keras 2 (tf_keras) everywhere, as in local runs: TFT and TFMA 1.16 use it inside.
ENV TF_USE_LEGACY_KERAS=1

# Beam's worker boot program, of the Beam version setup.py pins: what a runner starts in an SDK
# container. Kubeflow replaces the entry point with the component's command.
COPY --from=apache/beam_python3.10_sdk:2.59.0 /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]

WORKDIR /mmoe
COPY . .
RUN python -m pip install --no-cache-dir .
