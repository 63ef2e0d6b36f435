package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Who counts as one client for the per-address limits: an IPv6 address with the others of its block, an IPv4 address
 * (also IPv4-mapped) on its own; no network.
 */
class ClientKeyTest {

    @ParameterizedTest(name = "{0} and {1} in one /{2}: {3}")
    @CsvSource(delimiter = '|', value = {
            "2001:db8::1|2001:db8::2|64|true",
            "2001:db8::1|2001:db8::ffff:ffff:ffff:ffff|64|true",
            "2001:db8::1|2001:db8:0:1::1|64|false",
            "2001:db8::1|2001:db8::2|128|false",
            "2001:DB8:0:0:0:0:0:1|2001:db8::1|128|true",
            "2001:db8::1|2001:db8:0:ffff::1|48|true",
            "2001:db8::1|2001:db8:1::1|48|false",
            "2001:db8::1|2001:db9::1|31|true",
            "2001:db8::1|2001:db9::1|32|false",
            "7fff::1|::1|1|true",
            "8000::1|::1|1|false",
            "2001:db8::7fff:0:0:0|2001:db8::|65|true",
            "2001:db8::8000:0:0:0|2001:db8::|65|false",
            "2001:db8::1|2001:db8::|127|true",
            "2001:db8::2|2001:db8::|127|false",
            "2001:db8::1|2001:db8::|63|true",
            "2001:db8:0:1::|2001:db8::|63|true",
            "2001:db8:0:2::|2001:db8::|63|false"})
    void countsAnIpv6AddressWithTheOthersOfItsBlock(String a, String b, int prefix, boolean same) {
        assertThat(key(a, prefix).equals(key(b, prefix))).isEqualTo(same);
        if (same) {
            assertThat(key(a, prefix).hashCode()).isEqualTo(key(b, prefix).hashCode());
        }
    }

    @ParameterizedTest(name = "/{0}")
    @CsvSource({"1", "32", "64", "96", "127", "128"})
    void countsAnIpv4AddressOnItsOwnAndAsItsIpv4MappedForm(int prefix) {
        assertThat(key("::ffff:192.0.2.7", prefix)).isEqualTo(key("192.0.2.7", prefix));
        assertThat(key("192.0.2.8", prefix)).isNotEqualTo(key("192.0.2.7", prefix));
        assertThat(key("0.0.0.0", prefix)).as("never an IPv6 block").isNotEqualTo(key("::", prefix))
                .isNotEqualTo(key("::c000:207", prefix));
        assertThat(key("192.0.2.7", prefix)).as("never an IPv6 block")
                .isNotEqualTo(key("::c000:207", prefix)).isNotEqualTo(key("::ffff:0:c000:207", prefix));
    }

    @Test
    void countsAClientWithoutAnIpAddressByItsPeersText() {
        assertThat(ClientKey.of(null, "unix-socket", 64)).isEqualTo(ClientKey.of(null, "unix-socket", 64))
                .isNotEqualTo(ClientKey.of(null, "other", 64)).isNotEqualTo(key("::", 1));
    }

    @Test
    void namesTheBlockOfAnIpv6Key() {
        assertThat(key("2001:db8::2", 64).ipv6Block(64)).isEqualTo("2001:db8::/64");
        assertThat(key("2001:db8:0:ff01::1", 56).ipv6Block(56)).isEqualTo("2001:db8:0:ff00::/56");
        assertThat(key("2001:db8::8001:0:0:7", 65).ipv6Block(65)).isEqualTo("2001:db8:0:0:8000::/65");
        assertThat(key("2001:db8::7", 128).ipv6Block(128)).isEqualTo("2001:db8::7/128");
    }

    private static ClientKey key(String address, int prefix) {
        byte[] bytes = Cidr.literal(address);
        assertThat(bytes).as(address).isNotNull();
        return ClientKey.of(bytes, address, prefix);
    }
}
