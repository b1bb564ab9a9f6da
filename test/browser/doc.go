// Package browser drives a real Chromium (chromedp, Chrome DevTools
// Protocol) through the quarantine's review page. It is a module of its
// own so that chromedp and its protocol bindings never enter the
// daemon's go.mod; run it with `cd test/browser && go test ./...`
// (test/run.sh does). Set MAILWARDEN_SCREENSHOTS to a directory to
// rewrite the README's screenshots.
package browser
