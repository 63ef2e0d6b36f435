package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

class Utf8ValidatorTest {

    private static boolean valid(byte[]... fragments) {
        Utf8Validator validator = new Utf8Validator();
        for (byte[] fragment : fragments) {
            if (!validator.feed(ByteBuffer.wrap(fragment))) {
                return false;
            }
        }
        return validator.isComplete();
    }

    private static byte[] bytes(int... values) {
        byte[] result = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            result[i] = (byte) values[i];
        }
        return result;
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "plain ascii", "é", "€", "😀", "κόσμε", "\u07ff\u0800\uffff", "\udbff\udfff"})
    void acceptsWellFormedText(String text) {
        byte[] encoded = text.getBytes(StandardCharsets.UTF_8);
        assertThat(valid(encoded)).isTrue();
        // Every split point, byte by byte.
        for (int split = 0; split <= encoded.length; split++) {
            byte[] head = java.util.Arrays.copyOfRange(encoded, 0, split);
            byte[] tail = java.util.Arrays.copyOfRange(encoded, split, encoded.length);
            assertThat(valid(head, tail)).as("split at %d", split).isTrue();
        }
    }

    @Test
    void rejectsMalformedSequences() {
        assertThat(valid(bytes(0x80))).as("lone continuation").isFalse();
        assertThat(valid(bytes(0xC0, 0xAF))).as("overlong 2-byte").isFalse();
        assertThat(valid(bytes(0xE0, 0x80, 0xAF))).as("overlong 3-byte").isFalse();
        assertThat(valid(bytes(0xF0, 0x80, 0x80, 0xAF))).as("overlong 4-byte").isFalse();
        assertThat(valid(bytes(0xED, 0xA0, 0x80))).as("surrogate U+D800").isFalse();
        assertThat(valid(bytes(0xF4, 0x90, 0x80, 0x80))).as("above U+10FFFF").isFalse();
        assertThat(valid(bytes(0xF5, 0x80, 0x80, 0x80))).as("F5 lead").isFalse();
        assertThat(valid(bytes(0xFF))).as("FF").isFalse();
        assertThat(valid(bytes(0xE2, 0x82))).as("truncated at the end of the message").isFalse();
        assertThat(valid(bytes(0xE2), bytes(0x28, 0xA1))).as("bad continuation after a split").isFalse();
    }

    @Test
    void failsFastOnTheFirstImpossibleByte() {
        Utf8Validator validator = new Utf8Validator();
        assertThat(validator.feed(ByteBuffer.wrap(bytes(0xCE, 0xBA, 0xE1)))).isTrue();
        assertThat(validator.feed(ByteBuffer.wrap(bytes(0x41)))).isFalse();
        validator.reset();
        assertThat(validator.feed(ByteBuffer.wrap(bytes(0x41)))).isTrue();
        assertThat(validator.isComplete()).isTrue();
    }
}
