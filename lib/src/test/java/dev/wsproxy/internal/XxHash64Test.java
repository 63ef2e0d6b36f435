package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.Test;

/** The hash behind the sticky selectors is xxHash64 to the bit: the reference vectors of the specification. */
class XxHash64Test {

    private static long hash(String text) {
        return XxHash64.hash(text.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void matchesTheReferenceVectors() {
        assertThat(hash("")).isEqualTo(0xEF46DB3751D8E999L);
        assertThat(hash("a")).isEqualTo(0xD24EC4F1A98C6E5BL);
        assertThat(hash("abc")).isEqualTo(0x44BC2CF5AD770999L);
        assertThat(hash("asdf")).isEqualTo(0x415872F599CEA71EL);
        assertThat(hash("Call me Ishmael.")).isEqualTo(0x6D04390FC9D61A90L);
        // 39 bytes: one 32-byte stripe, then the 8-byte, 4-byte and 1-byte tails.
        assertThat(hash("Nobody inspects the spammish repetition")).isEqualTo(0xFBCEA83C8A378BF1L);
    }

    @Test
    void theTwoLongFormIsTheHashOfTheirSixteenBytes() {
        long[][] pairs = {{0, 0}, {1, 2}, {-1, Long.MIN_VALUE}, {0x0123456789ABCDEFL, 0xFEDCBA9876543210L}};
        for (long[] pair : pairs) {
            byte[] bytes = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(pair[0]).putLong(pair[1])
                    .array();
            assertThat(XxHash64.hash(pair[0], pair[1])).isEqualTo(XxHash64.hash(bytes));
        }
    }
}
