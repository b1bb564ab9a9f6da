package sa

// AutolearnInfo says how SpamAssassin's AutoLearnThreshold plugin counts
// a rule: header points (header and mimeheader rules), body points (body,
// rawbody, uri, full), neither (meta), unless tflags autolearn_header or
// autolearn_body force one; and whether tflags noautolearn, learn or
// userconf leave it out altogether. ok is false for an unknown rule.
func (e *Engine) AutolearnInfo(name string) (header, body, excluded, ok bool) {
	i, found := e.byName[name]
	if !found || e.rules[i] == nil {
		return false, false, false, false
	}
	r := e.rules[i]
	var tf map[string]string
	if r.def != nil {
		tf = r.def.Tflags
	}
	for _, f := range []string{"noautolearn", "learn", "userconf"} {
		if _, x := tf[f]; x {
			excluded = true
		}
	}
	_, fh := tf["autolearn_header"]
	_, fb := tf["autolearn_body"]
	switch {
	case fh:
		header = true
	case fb:
		body = true
	case r.kind == KindHeader || r.kind == KindMIMEHeader:
		header = true
	case r.kind == KindBody || r.kind == KindRawBody || r.kind == KindURI || r.kind == KindFull:
		body = true
	}
	return header, body, excluded, true
}
