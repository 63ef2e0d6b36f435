package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** How one {@code X-Forwarded-For} hop of a trusted proxy is read; the whole chain is in {@code TrustedProxyHashTest}. */
class ClientIdentityTest {

    @ParameterizedTest(name = "{0} is {1}")
    @CsvSource(delimiter = '|', value = {
            "203.0.113.7|203.0.113.7",
            " 203.0.113.7:51234 |203.0.113.7",
            "203.0.113.7:0|203.0.113.7",
            "203.0.113.7:65535|203.0.113.7",
            "[2001:db8::1]:443|2001:db8::1",
            "[2001:db8::1]|2001:db8::1",
            "2001:db8::1|2001:db8::1",
            "2001:db8::1:443|2001:db8::1:443",
            "[::ffff:10.1.2.3]:8080|10.1.2.3"})
    void readsAHopWithOrWithoutAPort(String hop, String address) {
        assertThat(ClientIdentity.hop(hop)).isEqualTo(Cidr.literal(address));
    }

    @ParameterizedTest
    @ValueSource(strings = {"203.0.113.7:", "203.0.113.7:65536", "203.0.113.7:123456", "203.0.113.7:http",
            "203.0.113.7:-1", "[2001:db8::1]:", "[2001:db8::1]x", "[2001:db8::1", "unknown", "_hidden",
            "example.com:443", ""})
    void readsAnythingElseAsGarbage(String hop) {
        assertThat(ClientIdentity.hop(hop)).isNull();
    }
}
