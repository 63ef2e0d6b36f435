package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class CidrTest {

    @Test
    void matchesAddressesInsideTheBlock() {
        Cidr block = Cidr.parse("10.0.0.0/8");
        assertThat(block.contains(Cidr.literal("10.200.3.4"))).isTrue();
        assertThat(block.contains(Cidr.literal("11.0.0.1"))).isFalse();
        assertThat(Cidr.parse("192.168.1.7").contains(Cidr.literal("192.168.1.7"))).isTrue();
        assertThat(Cidr.parse("192.168.1.7").contains(Cidr.literal("192.168.1.8"))).isFalse();
        assertThat(Cidr.parse("172.16.0.0/12").contains(Cidr.literal("172.31.255.255"))).isTrue();
        assertThat(Cidr.parse("172.16.0.0/12").contains(Cidr.literal("172.32.0.0"))).isFalse();
        assertThat(Cidr.parse("fd00::/8").contains(Cidr.literal("fd12::1"))).isTrue();
        assertThat(Cidr.parse("fd00::/8").contains(Cidr.literal("fe80::1"))).isFalse();
        assertThat(Cidr.parse("0.0.0.0/0").contains(Cidr.literal("8.8.8.8"))).isTrue();
    }

    @Test
    void readsIpv4MappedIpv6AsIpv4() {
        assertThat(Cidr.parse("10.0.0.0/8").contains(Cidr.literal("::ffff:10.1.2.3"))).isTrue();
        assertThat(Cidr.parse("10.0.0.0/8").contains(Cidr.literal("[::ffff:10.1.2.3]"))).isTrue();
    }

    @Test
    void readsAnIpv4MappedBlockAsTheIpv4BlockItMaps() {
        // Refused before with "a prefix length from 0 to 32": the mapped address was read as its 4 bytes, the prefix
        // as if it were an IPv4 one.
        Cidr mapped = Cidr.parse("::ffff:10.0.0.0/104");
        assertThat(mapped.contains(Cidr.literal("10.200.3.4"))).isTrue();
        assertThat(mapped.contains(Cidr.literal("::ffff:10.200.3.4"))).isTrue();
        assertThat(mapped.contains(Cidr.literal("11.0.0.1"))).isFalse();
        assertThat(Cidr.parse("[::ffff:192.168.1.0]/120").contains(Cidr.literal("192.168.1.77"))).isTrue();
        assertThat(Cidr.parse("[::ffff:192.168.1.0]/120").contains(Cidr.literal("192.168.2.1"))).isFalse();
        assertThat(Cidr.parse("::ffff:192.168.1.7").contains(Cidr.literal("192.168.1.7"))).isTrue();
        assertThat(Cidr.parse("::ffff:192.168.1.7").contains(Cidr.literal("192.168.1.8"))).isFalse();
        assertThat(Cidr.parse("::ffff:0.0.0.0/96").contains(Cidr.literal("8.8.8.8"))).isTrue();
        assertThat(Cidr.parse("::ffff:0.0.0.0/96").contains(Cidr.literal("2001:db8::1"))).isFalse();
        assertThat(mapped).hasToString("::ffff:10.0.0.0/104");
    }

    @ParameterizedTest
    @ValueSource(strings = {"::ffff:10.0.0.0/95", "::ffff:10.0.0.0/80", "::ffff:10.0.0.0/129", "::ffff:10.0.0.0/0"})
    void namesTheRangeOfAnIpv4MappedBlocksPrefix(String value) {
        assertThatThrownBy(() -> Cidr.parse(value)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("from 96 to 128 for an IPv4-mapped address");
    }

    /** The text backends get in X-Real-IP and X-Forwarded-For: bare, and RFC 5952's form, as nginx's $remote_addr. */
    @ParameterizedTest(name = "{0} is written {1}")
    @CsvSource({
            "0:0:0:0:0:0:0:1, ::1",
            "[0:0:0:0:0:0:0:1], ::1",
            "::, ::",
            "2001:DB8:0:0:0:0:0:1, 2001:db8::1",
            "2001:db8:0:0:1:0:0:1, 2001:db8::1:0:0:1",
            "2001:db8:0:1:0:0:0:1, 2001:db8:0:1::1",
            "2001:db8:0:1:1:1:1:1, 2001:db8:0:1:1:1:1:1",
            "fe80:0:0:0:0:0:0:0, fe80::",
            "2001:0db8:00aa:0:0:0:0:0bcd, 2001:db8:aa::bcd",
            "::ffff:10.1.2.3, 10.1.2.3",
            "192.168.001.007, 192.168.1.7"})
    void writesAnAddressBareInItsCanonicalForm(String literal, String expected) {
        assertThat(Cidr.text(Cidr.literal(literal))).isEqualTo(expected);
    }

    @ParameterizedTest
    @ValueSource(strings = {"999.1.1.1", "10.0.0", "10.0.0.0.0", "1.2.3.x", "localhost", "example.com",
            "10.0.0.0/33", "fd00::/129", "zz::1", "", "01234.1.1.1", "10.0.0.0/x"})
    void refusesWhatIsNotAnAddressOrBlockWithoutLookingItUp(String value) {
        assertThatThrownBy(() -> Cidr.parse(value)).isInstanceOf(IllegalArgumentException.class);
    }
}
