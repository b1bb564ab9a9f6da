package spam

import "strings"

// saRuleInfo tells autolearn where an sa-RULE signal looked and whether
// its tflags exclude it.
func (c *Check) saRuleInfo(name string) (SignalInfo, bool) {
	if c.rules == nil || !strings.HasPrefix(name, "sa-") {
		return SignalInfo{}, false
	}
	h, b, x, ok := c.rules.AutolearnInfo(strings.TrimPrefix(name, "sa-"))
	if !ok {
		return SignalInfo{}, false
	}
	i := SignalInfo{NoAutolearn: x}
	switch {
	case h:
		i.Kind = KindHeader
	case b:
		i.Kind = KindBody
	}
	return i, true
}
