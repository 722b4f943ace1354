# Reproducible OCI images without a daemon: file trees in, an OCI image layout out, pushes that keep the digest.
# Sourced by scripts/images and tests/cluster/up; every function exits 2 with one line on stderr when it fails.
#
# Why umoci + skopeo (and GNU tar): all three are Debian packages, need no daemon and no root-only image
# storage (unlike docker/podman/buildah), and write or copy a plain OCI layout directory, so an image can be
# built, inspected, unpacked and pushed from a CI job or a test without a container engine.
#
# Reproducibility: every layer is a tar made here with sorted names, one mtime (SOURCE_DATE_EPOCH or --epoch),
# numeric owner 0:0 and normalised modes (unless --keep-owners), and no atime/ctime; the only history entries
# (one per layer) and the config's `created` carry the epoch, never the wall clock. The same trees and options
# give the same manifest digest on any machine with the same umoci (its gzip output is part of the digest).
#
# Signatures (see each function's comment):
#   oci_add_file    ROOTFS SRC DEST [MODE]
#   oci_add_binary  ROOTFS SRC DEST
#   oci_add_users   ROOTFS [NAME:UID:GID ...]
#   oci_build       LAYOUT REF --layer DIR [--layer DIR ...] [--entrypoint ARG ...] [--cmd ARG ...] [--env K=V ...]
#                   [--user UID[:GID]] [--workdir DIR] [--label K=V ...] [--port N/tcp ...] [--epoch SECONDS]
#                   [--keep-owners]                                   -> prints the manifest digest
#   oci_digest      LAYOUT REF                                        -> prints the manifest digest
#   oci_push        LAYOUT REF DEST [--cert-dir DIR | --tls-verify=false]   (DEST: host[:port]/name:tag)
# shellcheck shell=bash

# One clear line on stderr and exit 2, as every script of the project fails.
oci_die() {
  echo "${OCI_PROG:-oci}: $*" >&2
  exit 2
}

# The gist of a tool's stderr on one line: the last line, and of a logrus line (skopeo's) only its msg.
oci_tool_error() {
  local line
  line=$(grep -v '^[[:space:]]*$' <<<"$1" | tail -n1)
  if [[ $line =~ msg=\"(.*)\"$ ]]; then
    line=${BASH_REMATCH[1]//\\\"/\"}
  fi
  echo "$line"
}

# Fails unless every named command is installed (scripts/deps installs them).
oci_require() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null || oci_die "$cmd is not installed (scripts/deps installs it)"
  done
}

# Copies SRC to DEST inside ROOTFS (DEST absolute in the image), creating parents; MODE defaults to 0755 for
# an executable SRC and 0644 otherwise. Symlinks are followed: the image gets the file's content.
oci_add_file() {
  local rootfs=$1 src=$2 dest=$3 mode=${4:-}
  [[ -f $src ]] || oci_die "cannot add $src to an image: no such file"
  [[ $dest == /* ]] || oci_die "image path $dest must be absolute"
  if [[ -z $mode ]]; then
    if [[ -x $src ]]; then mode=0755; else mode=0644; fi
  fi
  mkdir -p "$rootfs$(dirname "$dest")"
  cp --dereference "$src" "$rootfs$dest" || oci_die "cannot copy $src into $rootfs"
  chmod "$mode" "$rootfs$dest"
}

# Copies the binary SRC to DEST inside ROOTFS and, if it is dynamically linked, every shared library `ldd`
# resolves for it (the loader included) at the same path it has here, so the image needs no distribution
# base. glibc 2.34+ has the "files" and "dns" name services inside libc.so.6, so no libnss_* is needed for
# /etc/hosts and DNS; a binary that dlopen()s more than ldd shows needs those files added by hand.
oci_add_binary() {
  local rootfs=$1 src=$2 dest=$3 line lib ldd_out
  oci_add_file "$rootfs" "$src" "$dest" 0755
  # ldd exits 1 for a static binary ("not a dynamic executable" / "statically linked").
  ldd_out=$(LC_ALL=C ldd "$src" 2>&1) || true
  if grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
    return 0
  fi
  if grep -q 'not found' <<<"$ldd_out"; then
    oci_die "$src needs a library that is not installed: $(grep 'not found' <<<"$ldd_out" | head -n1 | xargs)"
  fi
  while read -r line; do
    # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", or "/lib64/ld-linux-x86-64.so.2 (0x...)";
    # linux-vdso has no file.
    lib=
    if [[ $line == *" => /"* ]]; then
      lib=${line#*=> }
      lib=${lib%% (*}
    elif [[ $line == /* ]]; then
      lib=${line%% (*}
    fi
    [[ -n $lib ]] || continue
    oci_add_file "$rootfs" "$lib" "$lib" 0755
  done <<<"$ldd_out"
}

# Writes /etc/passwd and /etc/group into ROOTFS naming root and each NAME:UID:GID given (default:
# nonroot:65532:65532, the user the installer's pod securityContexts run as), so tools and logs show names.
oci_add_users() {
  local rootfs=$1 user name uid gid
  shift
  (($#)) || set -- nonroot:65532:65532
  mkdir -p "$rootfs/etc"
  printf 'root:x:0:0:root:/root:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\n' >"$rootfs/etc/group"
  for user in "$@"; do
    IFS=: read -r name uid gid <<<"$user"
    [[ $name =~ ^[a-z_][a-z0-9_-]*$ && $uid =~ ^[0-9]+$ && $gid =~ ^[0-9]+$ ]] ||
      oci_die "user $user is not NAME:UID:GID"
    printf '%s:x:%s:%s:%s:/home/%s:/sbin/nologin\n' "$name" "$uid" "$gid" "$name" "$name" >>"$rootfs/etc/passwd"
    printf '%s:x:%s:\n' "$name" "$gid" >>"$rootfs/etc/group"
  done
  chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"
}

# Prints the manifest digest of REF in the OCI layout LAYOUT (what a registry reports after a push that
# keeps the manifest).
oci_digest() {
  local layout=$1 ref=$2 digest
  [[ -f $layout/index.json ]] || oci_die "$layout is not an OCI image layout (no index.json)"
  digest=$(jq -r --arg ref "$ref" \
    '[.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $ref) | .digest] | first // empty' \
    "$layout/index.json")
  [[ -n $digest ]] || oci_die "$layout has no image $ref"
  echo "$digest"
}

# Writes DIR (a file tree) as an uncompressed, reproducible layer tar to OUT.
oci_layer_tar() {
  local dir=$1 out=$2 epoch=$3 keep_owners=$4
  local -a norm=(--owner=0 --group=0 "--mode=u=rwX,go=rX")
  ((keep_owners)) && norm=()
  [[ -d $dir ]] || oci_die "layer $dir is not a directory"
  # Top-level entries by name, without "./": layers list paths as Docker's do.
  (cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\0' | LC_ALL=C sort -z) |
    tar --create --file="$out" --directory="$dir" --null --files-from=- --sort=name --format=posix \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime --mtime="@$epoch" \
      --numeric-owner "${norm[@]}" --no-acls --no-xattrs --no-selinux ||
    oci_die "cannot write the layer of $dir"
}

# Builds the image REF in the OCI layout LAYOUT (created if missing; an existing REF is replaced) from one
# layer per --layer DIR, with the given config, and prints its manifest digest. Options:
#   --layer DIR        a file tree added as one layer (repeatable, in order; at least one)
#   --entrypoint ARG   one argument of the entrypoint (repeatable: --entrypoint /bin/x --entrypoint --flag)
#   --cmd ARG          one argument of the default command (repeatable)
#   --env K=V          an environment variable (repeatable)
#   --user UID[:GID]   the user the container runs as (numeric, so no /etc/passwd lookup is needed)
#   --workdir DIR      the working directory
#   --label K=V        a config label (repeatable)
#   --port N/PROTO     an exposed port (repeatable)
#   --epoch SECONDS    every mtime and the config's `created` (default: $SOURCE_DATE_EPOCH)
#   --keep-owners      keep the trees' numeric owners and modes instead of 0:0 and u=rwX,go=rX
oci_build() {
  local layout=$1 ref=$2
  shift 2 || oci_die "oci_build needs LAYOUT REF"
  local epoch=${SOURCE_DATE_EPOCH:-} keep_owners=0 user='' workdir=
  local -a layers=() config=()
  while (($#)); do
    case $1 in
      --layer) layers+=("$2"); shift 2 ;;
      --entrypoint) config+=("--config.entrypoint=$2"); shift 2 ;;
      --cmd) config+=("--config.cmd=$2"); shift 2 ;;
      --env) config+=("--config.env=$2"); shift 2 ;;
      --user) user=$2; shift 2 ;;
      --workdir) workdir=$2; shift 2 ;;
      --label) config+=("--config.label=$2"); shift 2 ;;
      --port) config+=("--config.exposedports=$2"); shift 2 ;;
      --epoch) epoch=$2; shift 2 ;;
      --keep-owners) keep_owners=1; shift ;;
      *) oci_die "oci_build: unknown option $1" ;;
    esac
  done
  oci_require umoci tar jq
  ((${#layers[@]})) || oci_die "oci_build $ref: no --layer given"
  # umoci and skopeo read "LAYOUT:REF": a ':' in the layout's path would split it in the wrong place.
  [[ $layout != *:* ]] || oci_die "oci_build: the layout path $layout must not contain ':'"
  [[ $epoch =~ ^[0-9]+$ ]] || oci_die "oci_build $ref: no --epoch and SOURCE_DATE_EPOCH is not set to seconds"
  [[ -z $user ]] || config+=("--config.user=$user")
  [[ -z $workdir ]] || config+=("--config.workingdir=$workdir")
  local created work i=0 layer
  created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: $work is local; the trap removes itself after one use
  trap "rm -rf '$work'; trap - RETURN" RETURN

  [[ -f $layout/oci-layout ]] || umoci init --layout "$layout" >/dev/null || oci_die "cannot create $layout"
  if umoci ls --layout "$layout" | grep -qxF "$ref"; then
    umoci rm --image "$layout:$ref" || oci_die "cannot replace $ref in $layout"
  fi
  umoci new --image "$layout:$ref" || oci_die "umoci new $ref failed"
  for layer in "${layers[@]}"; do
    oci_layer_tar "$layer" "$work/layer-$i.tar" "$epoch" "$keep_owners"
    # A history entry per layer (dated at the epoch): tools such as `docker history` expect one.
    umoci raw add-layer --history.created="$created" --history.created_by="oci_build --layer (layer $i)" \
      --image "$layout:$ref" "$work/layer-$i.tar" ||
      oci_die "cannot add the layer $layer to $ref"
    i=$((i + 1))
  done
  # `created` here replaces the wall-clock time `umoci new` wrote; --no-history keeps wall-clock times
  # out of the config altogether.
  umoci config --no-history --image "$layout:$ref" --created="$created" "${config[@]}" ||
    oci_die "cannot write the config of $ref"
  # The intermediate manifests and configs umoci wrote on the way are unreferenced now.
  umoci gc --layout "$layout" || oci_die "umoci gc $layout failed"
  oci_digest "$layout" "$ref"
}

# Copies REF from the OCI layout LAYOUT to the registry as DEST (host[:port]/name:tag) keeping its manifest
# byte for byte, then reads the manifest back from the registry and fails unless its digest is the layout's.
# Extra arguments: --cert-dir DIR (a CA for the registry) or --tls-verify=false (plain HTTP).
oci_push() {
  local layout=$1 ref=$2 dest=$3 want got
  shift 3 || oci_die "oci_push needs LAYOUT REF DEST"
  local -a copy=() inspect=()
  while (($#)); do
    case $1 in
      --cert-dir) copy+=(--dest-cert-dir "$2"); inspect+=(--cert-dir "$2"); shift 2 ;;
      --cert-dir=*) copy+=(--dest-cert-dir "${1#*=}"); inspect+=(--cert-dir "${1#*=}"); shift ;;
      --tls-verify=false) copy+=(--dest-tls-verify=false); inspect+=(--tls-verify=false); shift ;;
      *) oci_die "oci_push: unknown option $1 (--cert-dir DIR or --tls-verify=false)" ;;
    esac
  done
  oci_require skopeo sha256sum
  want=$(oci_digest "$layout" "$ref")
  # --insecure-policy: the signature policy is about trusting what is pulled; here our own layout is the
  # source. --preserve-digests: fail rather than convert the manifest to another format.
  local err raw
  err=$(skopeo --insecure-policy copy --quiet --preserve-digests "${copy[@]}" "oci:$layout:$ref" "docker://$dest" 2>&1) ||
    oci_die "pushing $ref to $dest failed: $(oci_tool_error "$err")"
  raw=$(mktemp)
  err=$(skopeo inspect --raw "${inspect[@]}" "docker://$dest" 2>&1 >"$raw") || {
    rm -f "$raw"
    oci_die "cannot read $dest back: $(oci_tool_error "$err")"
  }
  got=$(sha256sum <"$raw") && rm -f "$raw"
  got="sha256:${got%% *}"
  [[ $got == "$want" ]] || oci_die "$dest has manifest $got after the push, not $want: the registry rewrote it"
}
