// Puppeteer drives the system Chromium (Debian's /usr/bin/chromium); never download a browser of its own.
module.exports = { skipDownload: true };
