package sfu

import (
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// headerOnce keeps a publisher's packet path free of allocations. Each of
// Pion's receive-side interceptors (NACK generator, receiver reports,
// transport-cc) wants the packet's parsed header from the read's
// attributes, and when the attributes are empty the first one makes a map
// and a header for every packet: three allocations per packet received.
// This interceptor, innermost in the chain, gives every read of a stream
// the same attributes and parses each packet into the same header, which
// the others then find there.
type headerOnce struct{ interceptor.NoOp }

type headerOnceFactory struct{}

func (headerOnceFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &headerOnce{}, nil
}

// BindRemoteStream implements interceptor.Interceptor.
func (*headerOnce) BindRemoteStream(_ *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	attrs := interceptor.Attributes{}
	var hdr *rtp.Header
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, _, err := reader.Read(b, a)
		if err != nil {
			return n, nil, err
		}
		if hdr == nil {
			// The first packet stores its header under the package's
			// own key; later packets are parsed into it in place.
			if hdr, err = attrs.GetRTPHeader(b[:n]); err != nil {
				hdr = nil
				return n, nil, err
			}
			return n, attrs, nil
		}
		if _, err := hdr.Unmarshal(b[:n]); err != nil {
			return n, nil, err
		}
		return n, attrs, nil
	})
}
