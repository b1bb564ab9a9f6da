package corpus

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFilesFollowsSymlinks (issue 17.4): links to files and to
// directories are followed, hidden names skipped, a link loop read once.
func TestFilesFollowsSymlinks(t *testing.T) {
	root := t.TempDir()
	store := filepath.Join(root, "store")
	corpus := filepath.Join(root, "corpus")
	for _, d := range []string{store, filepath.Join(store, "sub"), corpus} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"a.eml", "sub/b.eml", ".hidden"} {
		os.WriteFile(filepath.Join(store, f), []byte("Subject: x\n\nx\n"), 0o644)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(filepath.Join(store, "a.eml"), filepath.Join(corpus, "link.eml")))
	must(os.Symlink(filepath.Join(store, "sub"), filepath.Join(corpus, "dir")))
	must(os.Symlink(corpus, filepath.Join(corpus, "loop")))
	got, err := Files(corpus)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(corpus, "dir", "b.eml"), filepath.Join(corpus, "link.eml")}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Files = %q, want %q", got, want)
	}
	// A symlink given as the path itself.
	if got, err := Files(filepath.Join(corpus, "dir")); err != nil || len(got) != 1 {
		t.Errorf("Files(link to dir) = %q, %v", got, err)
	}
}
