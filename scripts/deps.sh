# Sourced by the other scripts: installs the Debian packages mpmap needs,
# only those that are missing, and only asks apt once.
mpmap_require_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "mpmap: installing ${missing[*]}" >&2
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "mpmap: need root (or sudo) to install: ${missing[*]}" >&2; return 1; }
    sudo="sudo"
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# What building and running mpmap needs.
MPMAP_BUILD_PACKAGES=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev
  libhdf5-openmpi-dev hdf5-tools libcmocka-dev librandom123-dev)
# What the test suite needs on top: Python checks of the output files, the fuzzer,
# the format check, the SLURM cluster the batch scripts run on (scripts/slurm-local.sh).
MPMAP_TEST_PACKAGES=(python3 python3-h5py python3-numpy python3-xarray python3-h5netcdf python3-matplotlib
  clang libclang-rt-14-dev clang-format time slurm-wlm munge)

# Open MPI refuses to run as root and to place more ranks than cores unless
# told; a workstation user running the quick start wants both to just work.
mpmap_mpi_env() {
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export OMPI_MCA_rmaps_base_oversubscribe=1
}
