#!/usr/bin/env bash
# The dashboard in Chromium on the lent NVIDIA machine (tools/gpu-page.ts measures it there).
#
# Headless Chromium asks Vulkan for VK_EXT_headless_surface, which NVIDIA's driver lacks, so the page runs in a normal
# (X11) Chromium on a carried Xvfb. The machine has no Chromium and no X libraries, and can fetch nothing: this script
# packs Debian's chromium with every shared library it loads (glibc included, its interpreter patched to the carried
# one) and Xvfb into .carry/chr-parts/, split into pieces that fit one call's 64 MiB tree beside the repository.
#
# What it found on the H200 (Chromium 156, driver 580.159.04): Chromium starts on the X display and its Vulkan loader
# lists both the NVIDIA H200 and SwiftShader, but the page's WebGPU adapter is SwiftShader in every configuration whose
# GPU process starts (compositor GL on ANGLE/SwiftShader), and there is none (requestAdapter() null) where GL is asked of
# the GPU (Xvfb has no GLX without Mesa; headless with Vulkan surfaces off). tools/gpu-page.ts lists the flags tried.
#
# Here (Debian bookworm with chromium installed), once:
#   bash tools/gpu-chromium.sh pack        # .carry/chr-parts/part-*, .carry/gpu-page.mjs, .carry/dist (page, dev build)
# On the device, back to back (the machine stays warm 30 s between calls), carrying .carry (parts named per call):
#   bash tools/gpu-chromium.sh receive     # appends this call's parts to /tmp/chr.tar.xz
#   source .gpu/remote.sh && bash tools/gpu-chromium.sh run   # unpack, Xvfb, random 64×256 model, measure → $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in
  pack)
    P=/tmp/chrpack; rm -rf $P; mkdir -p $P/chr/{lib,bin,chromium,fonts,etc,share/X11} $P/debs /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    apt-get $o update -qq
    (cd $P/debs && apt-get $o download xvfb x11-xkb-utils xkb-data libxfont2 libpixman-1-0 libunwind8 libfontenc1 \
      libxkbfile1 libgl1 libglx0 libglvnd0 patchelf 2>/dev/null)
    mkdir -p $P/root && for f in $P/debs/*.deb; do dpkg -x "$f" $P/root; done
    (cd /usr/lib/chromium && cp -a chromium chrome_crashpad_handler icudtl.dat libEGL.so libGLESv2.so libvk_swiftshader.so \
      libvulkan.so.1 resources.pak snapshot_blob.bin v8_context_snapshot.bin vk_swiftshader_icd.json \
      chrome_100_percent.pak locales $P/chr/chromium/)
    cp -a $P/root/usr/bin/Xvfb $P/root/usr/bin/xkbcomp $P/chr/bin/
    cp -a $P/root/usr/share/X11/xkb $P/chr/share/X11/
    cp /usr/share/fonts/truetype/dejavu/DejaVuSans{,-Bold,Mono}.ttf $P/chr/fonts/
    printf '<?xml version="1.0"?>\n<fontconfig><dir>/tmp/chr/fonts</dir><cachedir>/tmp/chr/fontcache</cachedir></fontconfig>\n' \
      > $P/chr/etc/fonts.conf
    rl=$P/root/usr/lib/x86_64-linux-gnu; nss=/usr/lib/x86_64-linux-gnu
    for b in $P/chr/chromium/{chromium,chrome_crashpad_handler,libvulkan.so.1,libvk_swiftshader.so} $P/chr/bin/{Xvfb,xkbcomp} \
        $nss/lib{softokn3,freebl3,freeblpriv3,nssckbi}.so; do
      LD_LIBRARY_PATH=$rl:/usr/lib/chromium ldd "$b" | awk '/=>/ {print $3} /ld-linux/ {print $1}' | grep ^/ || true
    done | sort -u | grep -v ^/usr/lib/chromium/ | xargs -I{} cp -L {} $P/chr/lib/
    cp -L $nss/lib{softokn3,freebl3,freeblpriv3,nssckbi}.so /lib/x86_64-linux-gnu/libnss_{files,dns}.so.2 $P/chr/lib/
    for b in $P/chr/chromium/{chromium,chrome_crashpad_handler} $P/chr/bin/{Xvfb,xkbcomp}; do
      $P/root/usr/bin/patchelf --set-interpreter /tmp/chr/lib/ld-linux-x86-64.so.2 "$b"
    done
    # Xvfb runs xkbcomp through the machine's /bin/sh, which must not see the carried glibc: Xvfb and xkbcomp find
    # their libraries through DT_RPATH (transitive, unlike RUNPATH) instead of LD_LIBRARY_PATH.
    $P/root/usr/bin/patchelf --force-rpath --set-rpath /tmp/chr/lib $P/chr/bin/{Xvfb,xkbcomp}
    mkdir -p .carry && rm -rf .carry/chr-parts && mkdir .carry/chr-parts
    tar -C $P -cf - chr | xz -T2 -6 | split -b 44M -d - .carry/chr-parts/part-
    npx esbuild tools/gpu-page.ts --bundle --platform=node --format=esm --log-level=warning --outfile=.carry/gpu-page.mjs \
      --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
    # The page with its test hook (a development-mode build). The 64 × 256 model is listed at build time and its
    # weights are made on the device (same seed, same file names).
    w=public/models/wide-64x256
    /work/pyenv/bin/python tools/random_model.py --shape wide-64x256 --out $w --device cpu >/dev/null
    NODE_ENV=development npx vite build --mode development --outDir .carry/dist --emptyOutDir --logLevel warn
    rm -rf $w .carry/dist/models/moescope-demo-early .carry/dist/models/wide-64x256/*.safetensors
    echo '<!doctype html><title>probe</title>' > .carry/dist/probe.html
    ls -la .carry/chr-parts; du -sh .carry/dist .carry/gpu-page.mjs
    ;;
  receive)
    cat .carry/chr-parts/part-* >> /tmp/chr.tar.xz
    ls -la /tmp/chr.tar.xz
    ;;
  run)
    out=${OUT:-bench/results}
    [ -d /tmp/chr ] || xz -dc /tmp/chr.tar.xz | tar -C /tmp -xf -
    # The carried glibc serves Chromium and Xvfb only (their interpreter is the carried one); node keeps the machine's.
    export CHR_LIBS=/tmp/chr/lib:/tmp/chr/chromium FONTCONFIG_FILE=/tmp/chr/etc/fonts.conf DISPLAY=:99
    [ -x /usr/bin/xkbcomp ] || cp /tmp/chr/bin/xkbcomp /usr/bin/xkbcomp
    # Vulkan finds NVIDIA's driver on its default path, so that ANGLE can still point its own loader at SwiftShader.
    mkdir -p /etc/vulkan/icd.d && cp "${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}" /etc/vulkan/icd.d/
    unset VK_DRIVER_FILES
    /tmp/chr/bin/Xvfb :99 -screen 0 1600x1000x24 -nolisten tcp -xkbdir /tmp/chr/share/X11/xkb > "$out/xvfb.log" 2>&1 &
    sleep 2
    python3 tools/random_model.py --shape wide-64x256 --out .carry/dist/models/wide-64x256
    node .carry/gpu-page.mjs --dist .carry/dist --out "$out" --chromium /tmp/chr/chromium/chromium
    ;;
  *)
    echo "usage: bash tools/gpu-chromium.sh pack | receive | run" >&2; exit 2 ;;
esac
