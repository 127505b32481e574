package daemon

import "testing"

func TestACMEChallengesOff(t *testing.T) {
	for _, tc := range []struct {
		in             []string
		noHTTP, noALPN bool
		wantErr        bool
	}{
		{in: nil},
		{in: []string{"http-01", "tls-alpn-01"}},
		{in: []string{"tls-alpn-01"}, noHTTP: true},
		{in: []string{" HTTP-01 "}, noALPN: true},
		{in: []string{"dns-01"}, wantErr: true},
		{in: []string{"http-01", ""}, wantErr: true},
	} {
		noHTTP, noALPN, err := IngressConfig{ACMEChallenges: tc.in}.ACMEChallengesOff()
		if (err != nil) != tc.wantErr || noHTTP != tc.noHTTP || noALPN != tc.noALPN {
			t.Errorf("%q: got http off %v, tls-alpn off %v, err %v; want %v, %v, error %v",
				tc.in, noHTTP, noALPN, err, tc.noHTTP, tc.noALPN, tc.wantErr)
		}
	}
}
