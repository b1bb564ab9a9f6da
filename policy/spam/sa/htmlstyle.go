package sa

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The colours of HTML text, as SpamAssassin's HTML.pm follows them to
// find text that cannot be read: the same colour as its background
// (font_low_contrast) or a colour no browser can parse
// (font_invalid_color).

// styleTags are the elements whose attributes change the text's colours
// (HTML.pm's %elements_text_style).
var styleTags = wordSet(`body font table tr th td big small basefont marquee span p div a`)

// textStyle is one level of the style stack: the element that opened it
// and the colours it leaves, "#rrggbb", "invalid" or "transparent".
type textStyle struct {
	tag    string
	fg, bg string
	size   int // the font size, from <font size>, big and small
}

// styleStack is HTML.pm's text_style stack for one HTML part.
type styleStack []textStyle

func newStyleStack() styleStack {
	return styleStack{{tag: "default", fg: "#000000", bg: "#ffffff", size: 3}}
}

func (s styleStack) has(tag string) bool {
	for i := range s {
		if s[i].tag == tag {
			return true
		}
	}
	return false
}

// open is a start tag of a styleTags element: color and text are its
// attributes of those names as the element takes them (font and
// basefont have color, body has text), style its style attribute (the
// table elements, span, p, div, a); "" when absent. The bgcolor
// attribute changes nothing: HTML.pm 4.0 converts it but never stores it.
func (s *styleStack) open(tag, color, style string, hasColor, hasStyle bool) {
	if tag == "th" {
		tag = "td"
	}
	if tag == "td" || tag == "tr" {
		s.closeTable(tag)
	}
	top := (*s)[len(*s)-1]
	n := textStyle{tag: tag, fg: top.fg, bg: top.bg, size: top.size}
	if hasColor {
		n.fg = nameToRGB(color)
	}
	if hasStyle {
		for _, part := range strings.Split(style, ";") {
			parseStyleColor(part, &n)
		}
		if n.bg == "transparent" {
			n.bg = top.bg
		}
		if n.fg == "transparent" {
			n.fg = n.bg
		}
	}
	*s = append(*s, n)
}

// close is an end tag: everything up to and including the innermost
// element of that name is closed (not body: browsers render text after
// </body>), nothing when none is open.
func (s *styleStack) close(tag string) {
	if tag == "th" {
		tag = "td"
	}
	if tag == "body" || !s.has(tag) {
		return
	}
	for len(*s) > 1 {
		last := (*s)[len(*s)-1].tag
		*s = (*s)[:len(*s)-1]
		if last == tag {
			return
		}
	}
}

// closeTable closes the cells and fonts a new cell or row ends (the end
// tags of td and tr may be left out).
func (s *styleStack) closeTable(tag string) {
	if !s.has(tag) {
		return
	}
	for len(*s) > 1 {
		top := (*s)[len(*s)-1].tag
		if tag == "td" && (top == "font" || top == "td") || tag == "tr" && (top == "font" || top == "td" || top == "tr") {
			*s = (*s)[:len(*s)-1]
			continue
		}
		return
	}
}

// parseStyleColor applies one declaration of a style attribute to n.
func parseStyleColor(decl string, n *textStyle) {
	// /^\s*(background-)?color:\s*(.+?)\s*$/i and /^\s*background:.../:
	// the name right before the colon.
	name, value, ok := strings.Cut(strings.TrimLeft(decl, " \t\n\r\f\v"), ":")
	if !ok {
		return
	}
	value = strings.TrimSpace(value)
	switch {
	case strings.EqualFold(name, "color"), strings.EqualFold(name, "background-color"):
		if value == "" {
			return
		}
		v := strings.ToLower(value)
		if i := strings.LastIndexByte(v, '!'); i >= 0 && strings.TrimSpace(v[i+1:]) == "important" {
			v = strings.TrimSpace(v[:i])
		}
		var c string
		switch {
		case strings.Contains(v, "rgb"):
			c = rgbFunc(v)
		case v == "inherit":
			return
		case v == "transparent":
			c = v
		default:
			c = nameToRGB(v)
		}
		if strings.EqualFold(name, "color") {
			n.fg = c
		} else {
			n.bg = c
		}
	case name == "background":
		// The first valid colour of the bottom layer.
		layers := cssLayers(strings.ToLower(value))
		if len(layers) == 0 {
			return
		}
		for _, v := range layers[len(layers)-1] {
			if c := nameToRGB(v); c != "invalid" {
				n.bg = c
				return
			}
		}
	}
}

// rgbFunc is HTML.pm's reading of rgb(...) in a style: the digits and
// commas kept, the first three numbers clamped to 0..255.
func rgbFunc(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; c >= '0' && c <= '9' || c == ',' {
			b.WriteByte(c)
		}
	}
	nums := strings.Split(b.String(), ",")
	var rgb [3]int
	for i := 0; i < 3 && i < len(nums); i++ {
		n, _ := strconv.Atoi(nums[i])
		if len(nums[i]) > 9 {
			n = 255
		}
		rgb[i] = min(n, 255)
	}
	return fmt.Sprintf("#%02x%02x%02x", rgb[0], rgb[1], rgb[2])
}

// cssLayers splits a CSS background value into its comma-separated
// layers of space-separated values, parentheses and quotes kept whole.
func cssLayers(v string) [][]string {
	var layers [][]string
	var tokens []string
	var tok strings.Builder
	var stack []byte // open ( " '
	flush := func() {
		if tok.Len() > 0 {
			tokens = append(tokens, tok.String())
			tok.Reset()
		}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if len(stack) == 0 {
			switch c {
			case ' ':
				flush()
			case ',':
				flush()
				layers = append(layers, tokens)
				tokens = nil
			case '(', '"', '\'':
				tok.WriteByte(c)
				stack = append(stack, c)
			default:
				tok.WriteByte(c)
			}
			continue
		}
		tok.WriteByte(c)
		switch top := stack[len(stack)-1]; {
		case top == '(' && c == ')':
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				flush()
			}
		case top == '(' && (c == '"' || c == '\''):
			stack = append(stack, c)
		case (top == '"' || top == '\'') && c == top:
			stack = stack[:len(stack)-1]
		}
	}
	flush()
	if len(tokens) > 0 {
		layers = append(layers, tokens)
	}
	return layers
}

// nameToRGB is HTML.pm's name_to_rgb: a colour name, #rgb, #rrggbb (cut
// or padded as browsers do) or rgb(), as "#rrggbb"; "invalid" otherwise,
// a hex colour without its # included.
func nameToRGB(color string) string {
	c := strings.ToLower(strings.TrimSpace(color))
	if v, ok := htmlColors[c]; ok {
		return fmt.Sprintf("#%06x", v)
	}
	if !hexish(c) && !rgbLike(c) {
		return "invalid"
	}
	if p, ok := rgbPercent(c); ok {
		c = p
	} else if d, ok := rgbDecimal(c); ok {
		c = d
	}
	if !strings.HasPrefix(c, "#") {
		return "invalid"
	}
	var h strings.Builder
	for i := 0; i < len(c); i++ {
		if x := c[i]; x >= '0' && x <= '9' || x >= 'a' && x <= 'f' {
			h.WriteByte(x)
		}
	}
	s := h.String()
	if len(s) > 6 {
		s = s[:6]
	}
	if len(s) > 3 && len(s) < 6 {
		s = s[:3]
	}
	if r := len(s) % 3; r != 0 {
		s += strings.Repeat("0", 3-r)
	}
	if len(s) == 3 {
		s = string([]byte{s[0], s[0], s[1], s[1], s[2], s[2]})
	}
	return "#" + s
}

// hexish is /^[#a-f0-9]*$/.
func hexish(c string) bool {
	for i := 0; i < len(c); i++ {
		if x := c[i]; !(x == '#' || x >= '0' && x <= '9' || x >= 'a' && x <= 'f') {
			return false
		}
	}
	return true
}

// rgbLike is /rgb\([\d%, ]*\)/ anywhere in c.
func rgbLike(c string) bool {
	for off := 0; ; {
		i := strings.Index(c[off:], "rgb(")
		if i < 0 {
			return false
		}
		j := off + i + 4
		for j < len(c) && (c[j] >= '0' && c[j] <= '9' || c[j] == '%' || c[j] == ',' || c[j] == ' ') {
			j++
		}
		if j < len(c) && c[j] == ')' {
			return true
		}
		off += i + 1
	}
}

// rgbArgs reads rgb(A<u>, B<u>, C<u>) with unit u ("%" or ""), white
// space allowed after the commas and before the parenthesis.
func rgbArgs(c, unit string) ([3]int, bool) {
	var out [3]int
	i := strings.Index(c, "rgb(")
	if i < 0 {
		return out, false
	}
	rest := c[i+4:]
	for k := 0; k < 3; k++ {
		if k > 0 {
			rest = strings.TrimLeft(rest, " \t\n\r\f\v")
		}
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 {
			return out, false
		}
		n, err := strconv.Atoi(rest[:j])
		if err != nil {
			n = math.MaxInt32
		}
		out[k] = n
		rest = rest[j:]
		if !strings.HasPrefix(rest, unit) {
			return out, false
		}
		rest = rest[len(unit):]
		if k < 2 {
			if !strings.HasPrefix(rest, ",") {
				return out, false
			}
			rest = rest[1:]
		}
	}
	rest = strings.TrimLeft(rest, " \t\n\r\f\v")
	return out, strings.HasPrefix(rest, ")")
}

func rgbPercent(c string) (string, bool) {
	v, ok := rgbArgs(c, "%")
	if !ok {
		return "", false
	}
	return "#" + dec2hex(v[0]*255/100) + dec2hex(v[1]*255/100) + dec2hex(v[2]*255/100), true
}

func rgbDecimal(c string) (string, bool) {
	v, ok := rgbArgs(c, "")
	if !ok {
		return "", false
	}
	return "#" + dec2hex(v[0]) + dec2hex(v[1]) + dec2hex(v[2]), true
}

func dec2hex(n int) string { return fmt.Sprintf("%02x", n) }

// invisible reports what HTML.pm's html_font_invisible finds of text in
// the current style: the same colour as the background or one too close
// to read (lowContrast), else an unparsable colour (invalid).
func (s styleStack) invisible() (lowContrast, invalid bool) {
	top := s[len(s)-1]
	fg, bg := top.fg, top.bg
	if last6(fg) == last6(bg) {
		return true, false
	}
	if r1, g1, b1, ok := hexRGB(fg); ok {
		if r2, g2, b2, ok := hexRGB(bg); ok {
			r, g, b := 0.2126*float64(r1-r2), 0.7152*float64(g1-g2), 0.0722*float64(b1-b2)
			if math.Sqrt(r*r+g*g+b*b) < 12 {
				return true, false
			}
		}
	}
	return false, fg == "invalid" || bg == "invalid"
}

// tiny says the text is in a font of size 1 or less, which
// html_font_invisible counts as invisible.
func (s styleStack) tiny() bool { return s[len(s)-1].size <= 1 }

func last6(s string) string { return s[max(len(s)-6, 0):] }

// hexRGB reads /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/.
func hexRGB(s string) (r, g, b int, ok bool) {
	s = strings.TrimPrefix(s, "#")
	if len(s) != 6 || !hexish(s) || strings.Contains(s, "#") {
		return 0, 0, 0, false
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, 0, 0, false
	}
	return int(v >> 16), int(v >> 8 & 0xff), int(v & 0xff), true
}

// htmlColors are the colour names of HTML 4 and CSS 3.
var htmlColors = map[string]uint32{
	"aliceblue": 0xf0f8ff, "antiquewhite": 0xfaebd7, "aqua": 0x00ffff, "aquamarine": 0x7fffd4, "azure": 0xf0ffff, "beige": 0xf5f5dc, "bisque": 0xffe4c4, "black": 0x000000, "blanchedalmond": 0xffebcd, "blue": 0x0000ff, "blueviolet": 0x8a2be2, "brown": 0xa52a2a, "burlywood": 0xdeb887, "cadetblue": 0x5f9ea0, "chartreuse": 0x7fff00, "chocolate": 0xd2691e, "coral": 0xff7f50, "cornflowerblue": 0x6495ed, "cornsilk": 0xfff8dc, "crimson": 0xdc143c, "cyan": 0x00ffff, "darkblue": 0x00008b, "darkcyan": 0x008b8b, "darkgoldenrod": 0xb8860b, "darkgray": 0xa9a9a9, "darkgreen": 0x006400, "darkgrey": 0xa9a9a9, "darkkhaki": 0xbdb76b, "darkmagenta": 0x8b008b, "darkolivegreen": 0x556b2f, "darkorange": 0xff8c00, "darkorchid": 0x9932cc, "darkred": 0x8b0000, "darksalmon": 0xe9967a, "darkseagreen": 0x8fbc8f, "darkslateblue": 0x483d8b, "darkslategray": 0x2f4f4f, "darkslategrey": 0x2f4f4f, "darkturquoise": 0x00ced1, "darkviolet": 0x9400d3, "deeppink": 0xff1493, "deepskyblue": 0x00bfff, "dimgray": 0x696969, "dimgrey": 0x696969, "dodgerblue": 0x1e90ff, "firebrick": 0xb22222, "floralwhite": 0xfffaf0, "forestgreen": 0x228b22, "fuchsia": 0xff00ff, "gainsboro": 0xdcdcdc, "ghostwhite": 0xf8f8ff, "gold": 0xffd700, "goldenrod": 0xdaa520, "gray": 0x808080, "green": 0x008000, "greenyellow": 0xadff2f, "grey": 0x808080, "honeydew": 0xf0fff0, "hotpink": 0xff69b4, "indianred": 0xcd5c5c, "indigo": 0x4b0082, "ivory": 0xfffff0, "khaki": 0xf0e68c, "lavender": 0xe6e6fa, "lavenderblush": 0xfff0f5, "lawngreen": 0x7cfc00, "lemonchiffon": 0xfffacd, "lightblue": 0xadd8e6, "lightcoral": 0xf08080, "lightcyan": 0xe0ffff, "lightgoldenrodyellow": 0xfafad2, "lightgray": 0xd3d3d3, "lightgreen": 0x90ee90, "lightgrey": 0xd3d3d3, "lightpink": 0xffb6c1, "lightsalmon": 0xffa07a, "lightseagreen": 0x20b2aa, "lightskyblue": 0x87cefa, "lightslategray": 0x778899, "lightslategrey": 0x778899, "lightsteelblue": 0xb0c4de, "lightyellow": 0xffffe0, "lime": 0x00ff00, "limegreen": 0x32cd32, "linen": 0xfaf0e6, "magenta": 0xff00ff, "maroon": 0x800000, "mediumaquamarine": 0x66cdaa, "mediumblue": 0x0000cd, "mediumorchid": 0xba55d3, "mediumpurple": 0x9370db, "mediumseagreen": 0x3cb371, "mediumslateblue": 0x7b68ee, "mediumspringgreen": 0x00fa9a, "mediumturquoise": 0x48d1cc, "mediumvioletred": 0xc71585, "midnightblue": 0x191970, "mintcream": 0xf5fffa, "mistyrose": 0xffe4e1, "moccasin": 0xffe4b5, "navajowhite": 0xffdead, "navy": 0x000080, "oldlace": 0xfdf5e6, "olive": 0x808000, "olivedrab": 0x6b8e23, "orange": 0xffa500, "orangered": 0xff4500, "orchid": 0xda70d6, "palegoldenrod": 0xeee8aa, "palegreen": 0x98fb98, "paleturquoise": 0xafeeee, "palevioletred": 0xdb7093, "papayawhip": 0xffefd5, "peachpuff": 0xffdab9, "peru": 0xcd853f, "pink": 0xffc0cb, "plum": 0xdda0dd, "powderblue": 0xb0e0e6, "purple": 0x800080, "red": 0xff0000, "rosybrown": 0xbc8f8f, "royalblue": 0x4169e1, "saddlebrown": 0x8b4513, "salmon": 0xfa8072, "sandybrown": 0xf4a460, "seagreen": 0x2e8b57, "seashell": 0xfff5ee, "sienna": 0xa0522d, "silver": 0xc0c0c0, "skyblue": 0x87ceeb, "slateblue": 0x6a5acd, "slategray": 0x708090, "slategrey": 0x708090, "snow": 0xfffafa, "springgreen": 0x00ff7f, "steelblue": 0x4682b4, "tan": 0xd2b48c, "teal": 0x008080, "thistle": 0xd8bfd8, "tomato": 0xff6347, "turquoise": 0x40e0d0, "violet": 0xee82ee, "wheat": 0xf5deb3, "white": 0xffffff, "whitesmoke": 0xf5f5f5, "yellow": 0xffff00, "yellowgreen": 0x9acd32,
}
