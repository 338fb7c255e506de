#!/bin/sh
# Checks dist/hello in one style: STYLE=plain or STYLE=shout (set by the matrix).
# GREETING is the pipeline parameter the app was built with; BREAK=true makes the
# expectation wrong on purpose, to show a failing run.
set -eu

case "$STYLE" in
    plain)
        want="$GREETING, gantry!"
        got=$(./dist/hello gantry)
        ;;
    shout)
        want=$(printf '%s\n' "$GREETING, gantry!" | tr '[:lower:]' '[:upper:]')
        got=$(./dist/hello --shout gantry)
        ;;
    *)
        echo "unknown STYLE: $STYLE" >&2
        exit 2
        ;;
esac
if [ "${BREAK:-false}" = true ]; then
    want="$want (deliberately wrong)"
fi
if [ "$got" != "$want" ]; then
    echo "not ok - $STYLE: got \"$got\", want \"$want\"" >&2
    exit 1
fi
echo "ok - $STYLE: $got"
