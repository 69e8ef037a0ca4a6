#!/usr/bin/env bash
# System packages for WebGPU without a GPU: Debian's chromium (SwiftShader's Vulkan driver, and the browser for
# end-to-end tests) and the Vulkan loader that Dawn (npm `webgpu`) opens. Needs root (or sudo). Idempotent.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] && [ -f /usr/lib/chromium/vk_swiftshader_icd.json ] || need+=(chromium)
ldconfig -p | grep -q 'libvulkan.so.1 ' || need+=(libvulkan1)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-dejavu-core >/dev/null
