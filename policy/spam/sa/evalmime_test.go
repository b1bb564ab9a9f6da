package sa

import (
	"strings"
	"testing"
)

const mimeEvalRules = `
body OBFU_05      eval:html_range('obfuscation_ratio', .05, .1)
body OBFU_90      eval:html_range('obfuscation_ratio', .9, 1.0)
body NONELEM      eval:html_range('non_element_ratio', 0.30, 0.40)
body EXTRA_CLOSE  eval:html_range('closed_extra_ratio', 0.09, 'inf')
body FONT_LARGE   eval:html_range('max_size', 5, 6)
body FONT_HUGE    eval:html_range('max_size', 6, 'inf')
body FACE_BAD     eval:html_test('font_face_bad')
body LOW_CONTRAST eval:html_test('font_low_contrast')
body BAD_COLOR    eval:html_test('font_invalid_color')
body MADIFF       eval:multipart_alternative_difference('99', '100')
body MADIFF_COUNT eval:multipart_alternative_difference_count('3', '1')
body B64_78_79    eval:check_base64_length('78', '79')
body B64_79       eval:check_base64_length('79')
rawbody QP_LONG   eval:check_for_mime('mime_qp_long_line')
body HTML_MOSTLY  eval:check_mime_multipart_ratio('0.00','0.01')
body TVD          eval:tvd_vertical_words('0', '10')
header GMAIL      eval:check_for_forged_gmail_received_headers()
header HOTMAIL    eval:check_for_no_hotmail_received_headers()
header RAT_EFROM  eval:check_ratware_envelope_from()
header RAT_NAMEID eval:check_ratware_name_id()
`

// alternative builds a multipart/alternative message of a text and an
// HTML part.
func alternative(text, html string) string {
	return "From: a@example.com\r\nTo: b@example.net\r\nSubject: s\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=\"B\"\r\n\r\n" +
		"--B\r\nContent-Type: text/plain\r\n\r\n" + text + "\r\n" +
		"--B\r\nContent-Type: text/html\r\n\r\n" + html + "\r\n--B--\r\n"
}

func htmlOnly(html string) string {
	return "From: a@example.com\r\nTo: b@example.net\r\nSubject: s\r\nContent-Type: text/html\r\n\r\n" + html + "\r\n"
}

func TestMIMEEvals(t *testing.T) {
	e := compile(t, mimeEvalRules, Options{})
	b64line := strings.Repeat("QUJD", 20) // 80 characters
	words := "one two three four five six seven eight nine ten"
	for _, c := range []struct {
		name, raw string
		want, not []string
	}{
		// 1 word split of 14 tags (12 tags + 2 for the html element).
		{"word split by tags", htmlOnly("<html><p>Buy V<b></b>iagra now</p><p>a</p><p>b</p><p>c</p><p>d</p></html>"),
			[]string{"OBFU_05"}, []string{"OBFU_90"}},
		{"a comment splits a word too", htmlOnly("V<!-- x -->iagra<br>"), []string{"OBFU_90"}, nil},
		{"tags between words with white space", htmlOnly("<html><p>Buy</p> <b>now</b> <i>or</i> <u>never</u> <p>x</p></html>"),
			nil, []string{"OBFU_05", "OBFU_90"}},
		{"every tag splits a word", htmlOnly("a<b>b</b>c"), []string{"OBFU_90"}, nil},
		{"a line break is no split", htmlOnly("<html>a<br>b<br>c<br>d<br>e<br>f<br>g<br>h<br>i</html>"), nil, []string{"OBFU_05", "OBFU_90"}},
		// html, p, foo: one of three names is no HTML element.
		{"unknown tags", htmlOnly("<html><foo>x</foo><p>y</p></html>"), []string{"NONELEM"}, nil},
		{"Office namespace tags count as elements", htmlOnly("<html><o:p>x</o:p><p>y</p></html>"), nil, []string{"NONELEM"}},
		{"extra end tags", htmlOnly("<p>x</p></p></b></i>"), []string{"EXTRA_CLOSE"}, nil},
		{"large font", htmlOnly(`<font size="6">BIG</font>`), []string{"FONT_LARGE"}, []string{"FONT_HUGE"}},
		{"relative font size past 6", htmlOnly(`<basefont size=5><font size="+2">BIG</font>`), []string{"FONT_HUGE"}, []string{"FONT_LARGE"}},
		{"usual font", htmlOnly(`<font size="2" face="Arial, Helvetica, sans-serif">x</font>`), nil, []string{"FONT_LARGE", "FONT_HUGE", "FACE_BAD"}},
		{"bad font face", htmlOnly(`<font face="{{font}}">x</font>`), []string{"FACE_BAD"}, nil},
		{"HTML part says something else", alternative(words, "<p>buy cheap pills here</p>"), []string{"MADIFF"}, []string{"MADIFF_COUNT"}},
		{"HTML part says the same", alternative(words, "<p>"+words+"</p>"), nil, []string{"MADIFF", "MADIFF_COUNT"}},
		{"text part has far more words", alternative(words+" eleven twelve", "<p>one two</p>"), []string{"MADIFF_COUNT"}, []string{"MADIFF"}},
		{"no alternative", htmlOnly("<p>buy cheap pills here</p>"), nil, []string{"MADIFF", "MADIFF_COUNT"}},
		{"long base64 lines", "From: a@example.com\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64line + "\r\n",
			[]string{"B64_79"}, []string{"B64_78_79"}},
		{"base64 line of 77", "From: a@example.com\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64line[:76] + "A\r\n",
			[]string{"B64_78_79"}, []string{"B64_79"}},
		{"usual base64 lines", "From: a@example.com\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64line[:76] + "\r\n",
			nil, []string{"B64_78_79", "B64_79"}},
		{"long quoted-printable line", "From: a@example.com\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + strings.Repeat("x", 79) + "\r\n",
			[]string{"QP_LONG"}, nil},
		{"quoted-printable line of 78", "From: a@example.com\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + strings.Repeat("x", 78) + "\r\n",
			nil, []string{"QP_LONG"}},
		{"tiny text part beside a big HTML part", alternative("x", "<p>"+strings.Repeat("y", 300)+"</p>"), []string{"HTML_MOSTLY"}, nil},
		{"text and HTML of a size", alternative(words, "<p>"+words+"</p>"), nil, []string{"HTML_MOSTLY"}},
		{"no spaces at all", "From: a@example.com\r\nSubject: s\r\n\r\nabcdefghijklmnopqrstuvwxyz\r\n", []string{"TVD"}, nil},
		{"usual prose", "From: a@example.com\r\nSubject: s\r\n\r\n" + words + "\r\n", nil, []string{"TVD"}},
		{"gmail From through a stranger", "From: Joe <joe@gmail.com>\r\nReceived: from x (x [203.0.113.5]) by mx.example.net\r\nSubject: s\r\n\r\nx\r\n",
			[]string{"GMAIL"}, nil},
		{"gmail From with Google's X-Received", "From: joe@gmail.com\r\nX-Received: by 10.1.2.3 with SMTP id abc\r\nSubject: s\r\n\r\nx\r\n",
			nil, []string{"GMAIL"}},
		{"hotmail From through a stranger", "From: joe@hotmail.com\r\nReceived: from x.example (x.example [203.0.113.5]) by mx.example.net\r\nSubject: s\r\n\r\nx\r\n",
			[]string{"HOTMAIL"}, nil},
		{"hotmail From from Hotmail", "From: joe@hotmail.com\r\nX-Originating-IP: [198.51.100.1]\r\nReceived: from hotmail.com (f135.law8.hotmail.com [216.33.241.135]) by mx.example.net\r\nSubject: s\r\n\r\nx\r\n",
			nil, []string{"HOTMAIL"}},
		{"envelope sender built from the recipient", "Return-Path: <example.net.bob@spam.example>\r\nFrom: x@spam.example\r\nTo: bob@example.net\r\nSubject: s\r\n\r\nx\r\n",
			[]string{"RAT_EFROM"}, nil},
		{"ordinary envelope sender", "Return-Path: <list-bounces@example.org>\r\nFrom: x@example.org\r\nTo: bob@example.net\r\nSubject: s\r\n\r\nx\r\n",
			nil, []string{"RAT_EFROM"}},
		{"ratware Message-Id", "Message-Id: <" + strings.Repeat("Q", 28) + ".joe@spam.example>\r\nFrom: \"Joe\" <joe@spam.example>\r\nSubject: s\r\n\r\nx\r\n",
			[]string{"RAT_NAMEID"}, nil},
		{"Message-Id of another address", "Message-Id: <" + strings.Repeat("Q", 28) + ".joe@spam.example>\r\nFrom: \"Joe\" <ann@spam.example>\r\nSubject: s\r\n\r\nx\r\n",
			nil, []string{"RAT_NAMEID"}},
	} {
		wantHits(t, c.name, e.Check(FromRaw([]byte(c.raw)), Input{}), c.want, c.not)
	}
}

// TestWalkKeepsEncodedLines: the parts of a multipart message carry the
// longest line of their encoded body and the multipart/alternative they
// are in.
func TestWalkKeepsEncodedLines(t *testing.T) {
	raw := "Content-Type: multipart/mixed; boundary=M\r\n\r\n--M\r\n" +
		"Content-Type: multipart/alternative; boundary=A\r\n\r\n--A\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nab=\r\ncd\r\n" +
		"--A\r\nContent-Type: text/html\r\n\r\n<p>abcd</p>\r\n--A--\r\n" +
		"--M\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\nQUJDRA==\r\n--M--\r\n"
	m := FromRaw([]byte(raw))
	if len(m.Parts) != 3 {
		t.Fatalf("%d parts, want 3", len(m.Parts))
	}
	if m.Type != "multipart/mixed" {
		t.Errorf("type %q", m.Type)
	}
	for i, w := range []struct {
		alt, maxLine int
		text         string
	}{{1, 3, "abcd"}, {1, 11, "<p>abcd</p>"}, {0, 8, ""}} {
		p := m.Parts[i]
		if p.Alt != w.alt || p.MaxLine != w.maxLine || p.Text != w.text {
			t.Errorf("part %d: alt %d, max line %d, text %q; want %d, %d, %q", i, p.Alt, p.MaxLine, p.Text, w.alt, w.maxLine, w.text)
		}
	}
}

// FuzzMIMEEvals: hostile MIME and HTML never crash the walk or the evals.
func FuzzMIMEEvals(f *testing.F) {
	f.Add([]byte(alternative("one two", "<p>V<b></b>iagra <font size=+9 face=\"{x}\">x</font></p></p>")))
	f.Add([]byte(htmlOnly("<basefont size=9><o:p></o:p><x>y</x><!doctype html>")))
	f.Add([]byte(htmlOnly(`<body text=red><table><tr><td><font color="rgb(300,1%,">x<span style="color:transparent;background: rgb( 1,2,3) url('a(b') , #fff">y</span></th></tr></table>`)))
	f.Add([]byte("Return-Path: <a.b@c>\r\nTo: b@a\r\nMessage-Id: <" + strings.Repeat("Q", 28) + ".\xa5@x>\r\nFrom: \"\" <\xa5@x>\r\n\r\nx"))
	e, err := Compile(parse(f, mimeEvalRules), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e.Check(FromRaw(raw), Input{})
	})
}

// TestToInSubject: check_for_to_in_subject finds the recipient's address
// or user name in the subject, in either case, and only there.
func TestToInSubject(t *testing.T) {
	e := compile(t, "header TO_ADDR eval:check_for_to_in_subject('address')\nheader TO_USER eval:check_for_to_in_subject('user')\n", Options{})
	for _, c := range []struct {
		to, subject string
		want        []string
	}{
		{"bob@example.net", "Hello BOB@Example.NET how are you", []string{"TO_ADDR"}},
		{"bob@example.net", "bob, your account", []string{"TO_USER"}},
		{"bob@example.net", "RE: Bob", []string{"TO_USER"}},
		{"bob@example.net", "news for bobby", nil},
		{"bob@example.net", "nothing here", nil},
		{"bøb@example.net", "bøb, hi", []string{"TO_USER"}},
		{"bøb@example.net", "Bøb, hi", nil}, // that branch is case-sensitive
	} {
		h := hits(e.Check(FromRaw([]byte("From: a@example.com\r\nTo: "+c.to+"\r\nSubject: "+c.subject+"\r\n\r\nx\r\n")), Input{}))
		for _, r := range []string{"TO_ADDR", "TO_USER"} {
			_, got := h[r]
			want := false
			for _, w := range c.want {
				want = want || w == r
			}
			if got != want {
				t.Errorf("To %s, Subject %q: %s hit %v, want %v", c.to, c.subject, r, got, want)
			}
		}
	}
}

// TestMIMEBase64Text: MIME_BASE64_TEXT is ASCII text in base64 that is
// neither an attachment nor marked inline (MIMEEval.pm); text in another
// charset has a reason to be in base64.
func TestMIMEBase64Text(t *testing.T) {
	e := compile(t, "rawbody B64_TEXT eval:check_for_mime('mime_base64_encoded_text')\n", Options{})
	msg := func(ct, cd string) []byte {
		h := "Subject: hi\r\nMIME-Version: 1.0\r\nContent-Type: " + ct + "\r\nContent-Transfer-Encoding: base64\r\n"
		if cd != "" {
			h += "Content-Disposition: " + cd + "\r\n"
		}
		return []byte(h + "\r\naGVsbG8gd29ybGQ=\r\n")
	}
	for _, c := range []struct {
		ct, cd string
		hit    bool
	}{
		{"text/plain", "", true},
		{"text/plain; charset=us-ascii", "", true},
		{"text/html; charset=\"iso-8859-1\"", "", false},
		{"text/plain; charset=utf-8", "", false},
		{"text/plain", "inline", false},
		{"text/plain", "attachment; filename=a.txt", false},
	} {
		_, hit := hits(e.Check(FromRaw(msg(c.ct, c.cd)), Input{}))["B64_TEXT"]
		if hit != c.hit {
			t.Errorf("%s, disposition %q: hit %v, want %v", c.ct, c.cd, hit, c.hit)
		}
	}
}

// TestASCIITextIllegal: PP_MIME_FAKE_ASCII_TEXT is a text/plain part
// declared US-ASCII (or with no charset) whose encoded body has a NUL, a
// byte above 0x7F or a CR outside the message's CRLF line breaks
// (MIMEEval.pm's _check_attachments).
func TestASCIITextIllegal(t *testing.T) {
	// As 72_active.cf has it: the rule is there only if the eval is.
	e := compile(t, "ifplugin Mail::SpamAssassin::Plugin::MIMEEval\nif can(Mail::SpamAssassin::Plugin::MIMEEval::has_check_for_ascii_text_illegal)\n"+
		"body FAKE_ASCII eval:check_for_ascii_text_illegal()\nendif\nendif\n", Options{})
	for _, c := range []struct {
		name, msg string
		hit       bool
	}{
		{"latin1 in ascii", "Subject: a\nContent-Type: text/plain; charset=us-ascii\n\ncaf\xe9\n", true},
		{"no charset", "Subject: a\n\ncaf\xc3\xa9\n", true},
		{"NUL", "Subject: a\n\nab\x00c\n", true},
		{"plain ascii", "Subject: a\n\ncafe\n", false},
		{"declared latin1", "Subject: a\nContent-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9\n", false},
		{"html", "Subject: a\nContent-Type: text/html\n\ncaf\xe9\n", false},
		// Encoded, the body is ASCII: the test reads it as encoded.
		{"qp", "Subject: a\nContent-Transfer-Encoding: quoted-printable\n\ncaf=E9\n", false},
		{"crlf message", "Subject: a\r\n\r\ncafe\r\n", false},
		{"CR in an LF message", "Subject: a\n\nca\r\nfe\n", true},
		{"lone CR", "Subject: a\r\n\r\nca\rfe\r\n", true},
		{"part", "Subject: a\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nok\n--b\nContent-Type: text/plain; charset=US-ASCII\n\n\xa0\n--b--\n", true},
	} {
		_, hit := hits(e.Check(FromRaw([]byte(c.msg)), Input{}))["FAKE_ASCII"]
		if hit != c.hit {
			t.Errorf("%s: hit %v, want %v", c.name, hit, c.hit)
		}
	}
}
