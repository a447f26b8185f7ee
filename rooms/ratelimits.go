package rooms

import "golang.org/x/time/rate"

// RateLimits returns the token bucket every author gets per room (after
// defaults): RateBurst messages at once, then RateLimit per second. The
// node paces its own lines to it (node.Say).
func (s *Service) RateLimits() (rate.Limit, int) {
	return s.cfg.RateLimit, s.cfg.RateBurst
}
