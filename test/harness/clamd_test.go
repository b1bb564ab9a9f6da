package harness

import (
	"strings"
	"testing"
)

func TestStartClamd(t *testing.T) {
	c := StartClamd(t, ClamdOptions{StreamMaxLength: 1 << 20, DisableCache: true})
	if err := ClamdPing("tcp", c.TCPAddr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Log(), "Loaded 2 signatures.") {
		t.Fatalf("want exactly the hash and the body signature; log:\n%s", c.Log())
	}
	c.Stop()
	if err := ClamdPing("unix", c.Socket); err == nil {
		t.Fatal("clamd still answers after Stop")
	}
}

func TestStartClamdSignatureSets(t *testing.T) {
	for _, tc := range []struct {
		sigs       ClamdSignatures
		hash, body bool
	}{{SignaturesHash, true, false}, {SignaturesBody, false, true}} {
		c := StartClamd(t, ClamdOptions{Signatures: tc.sigs})
		if !strings.Contains(c.Log(), "Loaded 1 signatures.") || (c.HashSignature != "") != tc.hash || (c.BodySignature != "") != tc.body {
			t.Errorf("%v: %+v\n%s", tc.sigs, c, c.Log())
		}
		c.Stop()
	}
}
