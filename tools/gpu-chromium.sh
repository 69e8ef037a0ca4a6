#!/usr/bin/env bash
# The dashboard in Chromium on the lent NVIDIA machine (tools/gpu-page.ts measures it there).
#
# Headless Chromium asks Vulkan for VK_EXT_headless_surface, which NVIDIA's driver lacks, so the page runs in a normal
# (X11) Chromium on a carried Xvfb. The machine has no Chromium and no X libraries, and can fetch nothing: this script
# packs Debian's chromium with every shared library it loads (glibc included, its interpreter patched to the carried
# one) and Xvfb into .carry/chr-parts/, split into pieces that fit one call's 64 MiB tree beside the repository, and
# Mesa (GLX for Xvfb, llvmpipe) in a piece of its own.
#
# What works on the H200 (Chromium 156, driver 580.159.04): ANGLE on NVIDIA's Vulkan with Vulkan surfaces off
# (tools/gpu-page.ts, config x11-angle-vulkan-no-surface): the page's WebGPU adapter is the H200. gpu-page.ts lists the
# configurations that gave SwiftShader or no adapter, and why.
#
# Here (Debian bookworm with chromium installed), once:
#   bash tools/gpu-chromium.sh pack        # .carry/chr-parts/part-*, .carry/gpu-page.mjs, .carry/dist (page, dev build)
#   bash tools/gpu-chromium.sh pack-mesa   # .carry/mesa.tar.xz: Mesa's GLX/EGL, swrast (llvmpipe) and their libraries
# On the device, back to back (the machine stays warm 30 s between calls), carrying .carry (parts named per call):
#   bash tools/gpu-chromium.sh receive     # appends this call's parts to /tmp/chr.tar.xz (and keeps a carried mesa.tar.xz)
#   source .gpu/remote.sh && bash tools/gpu-chromium.sh run   # unpack, Xvfb, random 64×256 model, measure → $OUT
# (GPU_PAGE_ONLY=CONFIG tries one configuration; GPU_PAGE_SKIP_DEMO=1 measures only the 64 × 256 model;
# GPU_PAGE_WIDE_TIMEOUT_MS bounds its opening. Figures are written as they come to $OUT/gpu-page-partial.json.)
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
  pack-mesa)
    P=/tmp/mesapack; rm -rf $P /tmp/mesaroot; mkdir -p $P/debs /tmp/mesaroot $P/chr/{lib,dri,egl_vendor.d} /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    apt-get $o update -qq
    (cd $P/debs && apt-get $o download libgl1-mesa-dri libglx-mesa0 libegl-mesa0 libegl1 libgles2 libgbm1 libdrm2 \
      libdrm-amdgpu1 libdrm-intel1 libdrm-nouveau2 libdrm-radeon1 libllvm15 libz3-4 libsensors5 libxshmfence1 libxcb-dri2-0 \
      libxcb-dri3-0 libxcb-present0 libxcb-sync1 libxcb-glx0 libxxf86vm1 libx11-xcb1 libwayland-server0 libwayland-client0 \
      libelf1 libedit2 libxml2 libicu72 libpciaccess0 libglapi-mesa libxcb-randr0 libxcb-xfixes0 2>/dev/null)
    for f in $P/debs/*.deb; do dpkg -x "$f" /tmp/mesaroot; done
    R=/tmp/mesaroot/usr/lib/x86_64-linux-gnu
    cp -L $R/dri/swrast_dri.so $P/chr/dri/
    cp /tmp/mesaroot/usr/share/glvnd/egl_vendor.d/50_mesa.json $P/chr/egl_vendor.d/
    for b in $R/dri/swrast_dri.so $R/libGLX_mesa.so.0 $R/libEGL_mesa.so.0 $R/libgbm.so.1 $R/libEGL.so.1 $R/libGLESv2.so.2; do
      LD_LIBRARY_PATH=$R ldd "$b" | awk '/=>/ {print $3}' | grep ^/ || true; echo "$b"
    done | sort -u | grep -v swrast_dri | xargs -I{} cp -L {} $P/chr/lib/
    rm -f $P/chr/lib/{libc.so.6,libm.so.6,libpthread.so.0,libdl.so.2,librt.so.1}  # the carried glibc's own
    mkdir -p .carry && tar -C $P -cf - chr | xz -T2 -9 > .carry/mesa.tar.xz
    ls -la .carry/mesa.tar.xz
    ;;
  receive)
    cat .carry/chr-parts/part-* >> /tmp/chr.tar.xz 2>/dev/null || true
    [ -f .carry/mesa.tar.xz ] && cp .carry/mesa.tar.xz /tmp/mesa.tar.xz
    ls -la /tmp/chr.tar.xz /tmp/mesa.tar.xz 2>/dev/null || true
    ;;
  run)
    out=${OUT:-bench/results}
    [ -d /tmp/chr ] || xz -dc /tmp/chr.tar.xz | tar -C /tmp -xf -
    # Xvfb and xkbcomp with their DT_RPATH set (see pack), where the pieces predate that step.
    [ -f .carry/xfix.tgz ] && tar -C /tmp/chr -xzf .carry/xfix.tgz
    # Mesa: Xvfb's GLX loads swrast from its built-in path; Chromium's GLX/EGL find it through LIBGL_DRIVERS_PATH.
    if [ -f /tmp/mesa.tar.xz ] && [ ! -d /tmp/chr/dri ]; then xz -dc /tmp/mesa.tar.xz | tar -C /tmp -xf -; fi
    if [ -d /tmp/chr/dri ]; then
      mkdir -p /usr/lib/x86_64-linux-gnu/dri && cp /tmp/chr/dri/swrast_dri.so /usr/lib/x86_64-linux-gnu/dri/
      export LIBGL_DRIVERS_PATH=/tmp/chr/dri __EGL_VENDOR_LIBRARY_DIRS=/tmp/chr/egl_vendor.d
    fi
    # What NVIDIA's driver offers for GL here (the EGL vendor file, GLX/EGL libraries), for the report.
    { ls -la /usr/share/glvnd/egl_vendor.d /usr/local/nvidia/lib64/lib{EGL,GLX,GLESv2}_nvidia* 2>&1
      find /usr /etc /opt \( -name '*nvidia*.json' -o -name 'libEGL_nvidia*' \) 2>/dev/null | head -20; cat "${VK_DRIVER_FILES:-}" 2>&1; } > "$out/nvidia-gl.txt" || true
    nv=$(find /usr /etc /opt -path '*egl_vendor.d*' -name '*nvidia*.json' 2>/dev/null | head -1)
    [ -n "$nv" ] && export NVIDIA_EGL_VENDOR=$nv
    # The carried glibc serves Chromium and Xvfb only (their interpreter is the carried one); node keeps the machine's.
    export CHR_LIBS=/tmp/chr/lib:/tmp/chr/chromium:/usr/local/nvidia/lib64 FONTCONFIG_FILE=/tmp/chr/etc/fonts.conf DISPLAY=:99
    [ -x /usr/bin/xkbcomp ] || cp /tmp/chr/bin/xkbcomp /usr/bin/xkbcomp
    # Vulkan finds NVIDIA's driver on its default path, so that ANGLE can still point its own loader at SwiftShader.
    mkdir -p /etc/vulkan/icd.d && cp "${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}" /etc/vulkan/icd.d/
    unset VK_DRIVER_FILES
    /tmp/chr/bin/Xvfb :99 -screen 0 1600x1000x24 +extension GLX -nolisten tcp -xkbdir /tmp/chr/share/X11/xkb > "$out/xvfb.log" 2>&1 &
    sleep 2
    python3 tools/random_model.py --shape wide-64x256 --out .carry/dist/models/wide-64x256
    node .carry/gpu-page.mjs --dist .carry/dist --out "$out" --chromium /tmp/chr/chromium/chromium
    ;;
  *)
    echo "usage: bash tools/gpu-chromium.sh pack | pack-mesa | receive | run" >&2; exit 2 ;;
esac
