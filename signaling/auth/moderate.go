package auth

// CanModerate reports whether the claims may act on room through the server
// API (list its participants, remove, mute, end it): a token with the Admin
// grant for any room it allows (every room when its Room is empty), or a
// token with the Moderate grant for its own room only. Moderate is
// room-scoped: a token without a room never carries it usefully (Verify
// refuses an empty room without Admin).
func (c Claims) CanModerate(room string) bool {
	if !ValidRoomName(room) {
		return false
	}
	if c.Grants.Admin {
		return c.RoomAllowed(room)
	}
	return c.Grants.Moderate && c.Room == room
}

// CanList reports whether the claims may list the live rooms of the whole
// cluster: the Admin grant only (a moderator sees its own room).
func (c Claims) CanList() bool { return c.Grants.Admin }
