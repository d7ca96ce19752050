package sfu

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"unsafe"

	"github.com/pion/dtls/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// A viewer's SRTP keys. The lean path (lean.go) encrypts a viewer's media
// with them, and a handed-over connection (handoff.go) decrypts the
// viewer's RTCP with them. They come from the connection's DTLS handshake
// (RFC 5764 section 4.2): the keying material its *dtls.Conn exports,
// split in halves by the DTLS role. Pion derives the same keys for its own
// SRTP sessions (DTLSTransport.startSRTP) but does not share them.
//
// This is the one place where the package depends on Pion's internals. No
// exported API gives the keys, the *dtls.Conn or its dtls.State. Checked
// in the versions go.mod pins (webrtc v4.2.26, dtls v3.1.15, srtp v3.1.3):
//
//   - webrtc.DTLSTransport (dtlstransport.go) exports ICETransport, State,
//     OnStateChange, GetLocalParameters (its Role is always auto),
//     GetRemoteCertificate, WriteRTCP, Start, StartContext and Stop. The
//     conn field, role(), startSRTP() and the SRTP sessions are unexported.
//   - The SettingEngine (settingengine.go) passes DTLS options to
//     dtls.Config only in dtlsSharedOptions, toDTLSServerOptions and
//     toDTLSClientOptions. SetDTLSKeyLogWriter, a debugging aid, writes the
//     client random and the master secret. The exporter also needs the
//     server random. SetDTLSClientHelloMessageHook and
//     SetDTLSServerHelloMessageHook only show the hello this side sends.
//     When we answer an offer, Pion makes us the DTLS client
//     (defaultDtlsRoleAnswer), and no hook shows the viewer's ServerHello.
//     SetDTLSConnectContextMaker only supplies the handshake's context.
//     SetDTLSCustomerCipherSuites cannot wrap a standard suite to see its
//     Init(masterSecret, clientRandom, serverRandom, isClient): for a
//     standard ID, dtls's cipherSuiteForID returns its built-in suite and
//     never looks at custom ones.
//   - dtls.Config.VerifyConnection (which is given the *dtls.State) or
//     HelloRandomBytesGenerator would be enough, but no SettingEngine
//     option sets either.
//   - TransportStats from PeerConnection.GetStats has DTLSState,
//     DTLSCipher and SRTPCipher, but neither the role nor the keys.
//
// So the *dtls.Conn is read from DTLSTransport's unexported conn field.
// The role comes from dtls.State.MarshalBinary: the state keeps isClient
// unexported, and its gob encoding names it IsClient. checkPionDTLS
// verifies both once, when the package is initialised. If Pion's layout
// has changed, no viewer gets the lean path or a hand-over (all stay on
// Pion's path), an error is logged, and
// TestDTLSKeys_PionLayoutStillHasTheConnField fails. A viewer's keys are
// read once, when its connection is up (leanLink.start); the hand-over
// reuses them.

// errNoDTLSConn is returned when Pion's DTLS transport has no DTLS
// connection to read the keys from: none yet, or a Pion version whose
// layout changed.
var errNoDTLSConn = errors.New("sfu: cannot reach the DTLS connection of a Pion DTLSTransport")

// pionDTLS is what checkPionDTLS found when the package was initialised.
var pionDTLS = checkPionDTLS()

// pionDTLSLayout tells how to reach the *dtls.Conn of a Pion
// DTLSTransport, or why that is not possible.
type pionDTLSLayout struct {
	connOffset uintptr // of DTLSTransport.conn
	err        error
	logged     sync.Once
}

// checkPionDTLS checks that Pion's layout is still what dtlsKeys reads:
// the DTLSTransport's conn field, and the role in dtls.State's encoding.
func checkPionDTLS() *pionDTLSLayout {
	off, err := connFieldOffset(reflect.TypeFor[webrtc.DTLSTransport]())
	if err == nil {
		err = checkStateRole()
	}
	return &pionDTLSLayout{connOffset: off, err: err}
}

// connFieldOffset returns the offset of t's own field conn, which must
// have type *dtls.Conn.
func connFieldOffset(t reflect.Type) (uintptr, error) {
	if t.Kind() != reflect.Struct {
		return 0, fmt.Errorf("%w: %s is not a struct", errNoDTLSConn, t)
	}
	f, ok := t.FieldByName("conn")
	if !ok || len(f.Index) != 1 || f.Type != reflect.TypeFor[*dtls.Conn]() {
		return 0, fmt.Errorf("%w: %s has no field conn of type *dtls.Conn", errNoDTLSConn, t)
	}
	return f.Offset, nil
}

// usable reports whether viewers' keys can be read. If they cannot, it
// logs why, once.
func (p *pionDTLSLayout) usable(log *slog.Logger) bool {
	if p.err == nil {
		return true
	}
	p.logged.Do(func() {
		log.Error("Pion's DTLS layout changed: viewers stay on Pion's write path, with no lean path and no hand-over", "err", p.err)
	})
	return false
}

// conn returns dt's DTLS connection, or errNoDTLSConn if it has none yet.
// This is safe once the connection is up. Pion sets the field before the
// transport reports Connected, and the connection's state change follows
// that report.
func (p *pionDTLSLayout) conn(dt *webrtc.DTLSTransport) (*dtls.Conn, error) {
	if p.err != nil {
		return nil, p.err
	}
	c := *(**dtls.Conn)(unsafe.Add(unsafe.Pointer(dt), p.connOffset))
	if c == nil {
		return nil, errNoDTLSConn
	}
	return c, nil
}

// dtlsKeys derives the connection's SRTP master keys and salts, as Pion
// does when it starts its SRTP session.
func dtlsKeys(dt *webrtc.DTLSTransport) (*leanKeys, error) {
	conn, err := pionDTLS.conn(dt)
	if err != nil {
		return nil, err
	}
	k, _, err := keysFromConn(conn)
	return k, err
}

// keysFromConn derives conn's SRTP keys and reports whether conn is the
// DTLS client. It uses only dtls's exported API.
func keysFromConn(conn *dtls.Conn) (*leanKeys, bool, error) {
	prof, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return nil, false, errors.New("sfu: no SRTP protection profile was negotiated")
	}
	st, ok := conn.ConnectionState()
	if !ok {
		return nil, false, errors.New("sfu: no DTLS connection state")
	}
	return keysFromState(&st, prof)
}

// keysFromState derives the SRTP keys of a DTLS state (RFC 5764 section
// 4.2) for the negotiated profile prof, and reports whether the state is
// the DTLS client's.
func keysFromState(st *dtls.State, prof dtls.SRTPProtectionProfile) (*leanKeys, bool, error) {
	var p srtp.ProtectionProfile
	switch prof {
	case dtls.SRTP_AEAD_AES_128_GCM:
		p = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		p = srtp.ProtectionProfileAes128CmHmacSha1_80
	default:
		return nil, false, fmt.Errorf("sfu: SRTP protection profile %#x is not offered", uint16(prof))
	}
	client, err := dtlsIsClient(st)
	if err != nil {
		return nil, false, err
	}
	cfg := srtp.Config{Profile: p}
	if err := cfg.ExtractSessionKeysFromDTLS(st, client); err != nil {
		return nil, false, fmt.Errorf("sfu: SRTP keys: %w", err)
	}
	return &leanKeys{profile: p, key: cfg.Keys.LocalMasterKey, salt: cfg.Keys.LocalMasterSalt,
		remoteKey: cfg.Keys.RemoteMasterKey, remoteSalt: cfg.Keys.RemoteMasterSalt}, client, nil
}

// dtlsIsClient reports the DTLS role of st. The role decides which half of
// the exported keys is ours. The state has it only in its serialised form.
func dtlsIsClient(st *dtls.State) (bool, error) {
	raw, err := st.MarshalBinary()
	if err != nil {
		return false, fmt.Errorf("sfu: DTLS state: %w", err)
	}
	defer clear(raw) // it holds the master secret
	var role struct{ IsClient bool }
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&role); err != nil {
		return false, fmt.Errorf("sfu: DTLS role: %w", err)
	}
	return role.IsClient, nil
}

// checkStateRole checks that dtlsIsClient still reads the role. It builds
// both ends of a made-up connection and checks that each reads as its own
// role and that their keys mirror each other (one's local key is the
// other's remote key). A handshake is not needed for this.
func checkStateRole() error {
	client, err := madeUpState(true)
	if err != nil {
		return err
	}
	server, err := madeUpState(false)
	if err != nil {
		return err
	}
	ck, cIsClient, err := keysFromState(client, dtls.SRTP_AEAD_AES_128_GCM)
	if err != nil {
		return err
	}
	sk, sIsClient, err := keysFromState(server, dtls.SRTP_AEAD_AES_128_GCM)
	if err != nil {
		return err
	}
	if !cIsClient || sIsClient {
		return errors.New("sfu: dtls.State's encoding no longer carries the DTLS role as IsClient")
	}
	eq := func(a, b []byte) bool { return len(a) > 0 && bytes.Equal(a, b) }
	if !eq(ck.key, sk.remoteKey) || !eq(ck.remoteKey, sk.key) || !eq(ck.salt, sk.remoteSalt) ||
		!eq(ck.remoteSalt, sk.salt) || eq(ck.key, ck.remoteKey) {
		return errors.New("sfu: the SRTP keys of a DTLS client and server do not mirror each other")
	}
	return nil
}

// madeUpState is one end of a made-up DTLS connection, decoded from the
// encoding dtls.State.MarshalBinary produces (the fields it needs, by
// their names in dtls's serializedState).
func madeUpState(client bool) (*dtls.State, error) {
	type serializedState struct {
		HandshakeComplete         bool
		LocalEpoch, RemoteEpoch   uint16
		LocalRandom, RemoteRandom [32]byte
		CipherSuiteID             uint16
		MasterSecret              []byte
		IsClient                  bool
	}
	s := serializedState{HandshakeComplete: true, LocalEpoch: 1, RemoteEpoch: 1,
		CipherSuiteID: uint16(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
		MasterSecret:  bytes.Repeat([]byte{0x5a}, 48), IsClient: client}
	clientRandom, serverRandom := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	if client {
		copy(s.LocalRandom[:], clientRandom)
		copy(s.RemoteRandom[:], serverRandom)
	} else {
		copy(s.LocalRandom[:], serverRandom)
		copy(s.RemoteRandom[:], clientRandom)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(s); err != nil {
		return nil, err
	}
	st := &dtls.State{}
	if err := st.UnmarshalBinary(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("sfu: dtls.State's encoding changed: %w", err)
	}
	return st, nil
}
