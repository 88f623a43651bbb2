package delivery

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

var (
	cgnat      = netip.MustParsePrefix("100.64.0.0/10")
	thisNet    = netip.MustParsePrefix("0.0.0.0/8")
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	broadcast  = netip.MustParseAddr("255.255.255.255")
	metadataV4 = netip.MustParseAddr("169.254.169.254")
	metadataV6 = netip.MustParseAddr("fd00:ec2::254")
)

// DeniedAddressError is the error of a connection refused because the
// endpoint has DenyPrivate set and its host resolved to a non-public address.
type DeniedAddressError struct {
	Addr netip.Addr
}

// Error says which address was refused and why.
func (e *DeniedAddressError) Error() string {
	return fmt.Sprintf("delivery: refusing to connect to %s: not a public address and the endpoint denies private addresses (deny_private)", e.Addr)
}

// deniedAddr reports whether a receiver at ip could reach something that a
// webhook sender must not: the host itself, the internal network, or the
// cloud metadata service.
func deniedAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if nat64.Contains(ip) {
		// The well-known NAT64 prefix embeds an IPv4 address in its last
		// 32 bits: judge that one.
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() ||
		cgnat.Contains(ip) || thisNet.Contains(ip) ||
		ip == broadcast || ip == metadataV4 || ip == metadataV6
}

// denyPrivateControl is a net.Dialer Control hook. It sees the address
// after name resolution, right before connect, so DNS rebinding cannot slip
// a private address past it.
func denyPrivateControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("delivery: refusing to connect to unresolved address %q", host)
	}
	if deniedAddr(ip) {
		return &DeniedAddressError{Addr: ip.Unmap()}
	}
	return nil
}

// newDialer returns the dialer of one endpoint. The connect timeout is
// shorter than the request timeout so that an unreachable host fails fast.
func newDialer(denyPrivate bool) *net.Dialer {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if denyPrivate {
		d.Control = denyPrivateControl
	}
	return d
}
