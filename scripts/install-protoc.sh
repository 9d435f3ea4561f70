#!/usr/bin/env bash
# Installs protoc from Debian's protobuf-compiler package, only when protoc is
# not already on PATH. libprotobuf-dev comes along because it ships the
# well-known types (google/protobuf/*.proto) that .proto files may import.
#
# The generated code records the protoc version in its header, so every
# machine should use the same Debian release's protoc (see PROTOC_VERSION in
# the Makefile); `make proto-check` says so when they differ.
set -euo pipefail

if command -v protoc >/dev/null 2>&1; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-protoc: protoc is not on PATH and apt-get is missing; install protoc by hand" >&2
	exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-protoc: not root and sudo is missing; install protobuf-compiler by hand" >&2
		exit 1
	fi
	sudo=(sudo)
fi

echo "install-protoc: installing protobuf-compiler with apt-get"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	protobuf-compiler libprotobuf-dev
if ! command -v protoc >/dev/null 2>&1; then
	echo "install-protoc: protobuf-compiler is installed but protoc is still not on PATH" >&2
	exit 1
fi
echo "install-protoc: $(protoc --version)"
