// Command dnsstub is the benchmark's DNS server: policy/dns/dnstest on
// 127.0.0.1 (UDP and TCP, one random port) with the records given as
// arguments in zone-file syntax. It writes its address to -addr-file and
// serves until SIGINT or SIGTERM. Unknown names get NXDOMAIN with an SOA, as
// from a real recursive resolver, so SPF, DKIM and DMARC run their full
// lookups on every corpus message (answered in microseconds).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
)

func main() {
	addrFile := flag.String("addr-file", "", "write the server's host:port here")
	flag.Parse()
	s, err := dnstest.StartServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer s.Close()
	if err := s.AddErr(flag.Args()...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile+".tmp", []byte(s.Addr+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.Rename(*addrFile+".tmp", *addrFile); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fmt.Println(s.Addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
