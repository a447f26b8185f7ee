package rooms

import "github.com/libp2p/go-libp2p/core/peer"

// SharesPrivateRoom reports whether p is online in a private room this
// node has joined: it holds the room key (its presence or messages there
// were sealed with it and signed with its key). It takes no allocation, so
// that a policy may ask it on every request (node's known peers do).
func (s *Service) SharesPrivateRoom(p peer.ID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.rooms {
		if r.private && r.isOnline(p) {
			return true
		}
	}
	return false
}
