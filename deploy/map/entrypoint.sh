#!/bin/sh
# Entry point of the MAP image (deploy/map/Dockerfile), as the MAP specification describes it:
#   (no arguments)  run the application on $HOLOSCAN_INPUT_PATH, writing $HOLOSCAN_OUTPUT_PATH
#   show            print the application and package manifests
#   export          copy the manifests and app.yaml (and the app, models and docs) into the folders
#                   mounted under /var/run/holoscan/export/{config,app,models,docs} (all four when
#                   only /var/run/holoscan/export itself is mounted)
#   anything else   arguments of `python3 -m app` (e.g. -i IN -o OUT -l DEBUG, --help)
set -eu

EXPORT_ROOT=/var/run/holoscan/export

export_config() {
    cp "$HOLOSCAN_APP_MANIFEST_PATH" "$HOLOSCAN_PKG_MANIFEST_PATH" "$HOLOSCAN_CONFIG_PATH" "$1"
}

export_all() {
    [ -d "$EXPORT_ROOT" ] || { echo "export: mount a folder at $EXPORT_ROOT (or its config, app, models, docs)" >&2; exit 2; }
    if [ ! -d "$EXPORT_ROOT/config" ] && [ ! -d "$EXPORT_ROOT/app" ] \
        && [ ! -d "$EXPORT_ROOT/models" ] && [ ! -d "$EXPORT_ROOT/docs" ]; then
        mkdir "$EXPORT_ROOT/config" "$EXPORT_ROOT/app" "$EXPORT_ROOT/models" "$EXPORT_ROOT/docs"
    fi
    if [ -d "$EXPORT_ROOT/config" ]; then export_config "$EXPORT_ROOT/config"; fi
    if [ -d "$EXPORT_ROOT/app" ]; then cp -R "$HOLOSCAN_APPLICATION/." "$EXPORT_ROOT/app/"; fi
    if [ -d "$EXPORT_ROOT/models" ]; then cp -R "$HOLOSCAN_MODEL_PATH/." "$EXPORT_ROOT/models/"; fi
    if [ -d "$EXPORT_ROOT/docs" ]; then cp -R "$HOLOSCAN_DOCS_PATH/." "$EXPORT_ROOT/docs/"; fi
}

case "${1:-}" in
    show)
        echo "===== $HOLOSCAN_APP_MANIFEST_PATH ====="
        cat "$HOLOSCAN_APP_MANIFEST_PATH"
        echo "===== $HOLOSCAN_PKG_MANIFEST_PATH ====="
        cat "$HOLOSCAN_PKG_MANIFEST_PATH"
        ;;
    export)
        export_all
        ;;
    *)
        cd "$HOLOSCAN_WORKDIR"
        exec python3 -m app "$@"
        ;;
esac
