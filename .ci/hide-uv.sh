# Sourced by .ci/run: `hide_uv` removes every uv from PATH, keeping everything else.
#
# A fresh machine has python3, pip, git and make, and no uv: the Makefile installs uv into
# .tools/ and the project's venv carries its own. A uv that this machine happens to have on
# PATH would hide a missing install step (it once hid that `make bento` failed without it), so
# every PATH entry holding uv is replaced by a folder of links to everything else in it.
hide_uv() {
    local entry farm kept=() name
    local -a entries
    IFS=: read -r -a entries <<<"$PATH"
    for entry in "${entries[@]}"; do
        if [ -n "$entry" ] && { [ -e "$entry/uv" ] || [ -e "$entry/uvx" ]; }; then
            farm="$(mktemp -d "${TMPDIR:-/tmp}/path-without-uv.XXXXXX")"
            for name in "$entry"/* "$entry"/.[!.]*; do
                [ -e "$name" ] || continue
                case "$(basename "$name")" in uv | uvx | uvw) ;; *) ln -s "$name" "$farm/" ;; esac
            done
            entry="$farm"
        fi
        kept+=("$entry")
    done
    PATH="$(IFS=:; echo "${kept[*]}")"
    export PATH
    if command -v uv >/dev/null 2>&1; then
        echo ".ci/run: could not hide uv ($(command -v uv)) from PATH" >&2
        exit 1
    fi
}
