package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class LogTextTest {

    @Test
    void keepsShortPrintableTextAsItIs() {
        String text = "https://app.example:8443";
        assertThat(LogText.printable(text, 100)).isSameAs(text);
        assertThat(LogText.printable("", 100)).isEmpty();
        assertThat(LogText.printable(null, 100)).isEqualTo("null");
    }

    @Test
    void escapesEverythingButPrintableAscii() {
        assertThat(LogText.printable("a\nb\u001B[31m\u007F\u0085\u009B\u00E9\u20AC", 100))
                .isEqualTo("a\\u000ab\\u001b[31m\\u007f\\u0085\\u009b\\u00e9\\u20ac");
        assertThat(LogText.printable("\uD83D\uDE00", 100)).as("each half of a surrogate pair").isEqualTo(
                "\\ud83d\\ude00");
    }

    @Test
    void cutsAtMaxCharsWithoutSplittingAnEscape() {
        assertThat(LogText.printable("x".repeat(10), 10)).isEqualTo("x".repeat(10));
        assertThat(LogText.printable("x".repeat(11), 10)).isEqualTo("x".repeat(10) + "...");
        // An escape that would end past the limit is left out whole.
        assertThat(LogText.printable("xxxxxxx\u0085", 10)).isEqualTo("xxxxxxx...");
        assertThat(LogText.printable("xxxx\u0085", 10)).isEqualTo("xxxx\\u0085");
    }

    @Test
    void keepsWithinMaxCharsInAllWhenCut() {
        assertThat(LogText.within("x".repeat(10), 10)).isEqualTo("x".repeat(10));
        assertThat(LogText.within("x".repeat(11), 10)).isEqualTo("x".repeat(7) + "...");
        assertThat(LogText.within("xxxx\u0085", 10)).isEqualTo("xxxx\\u0085");
        assertThat(LogText.within("xxxxx\u0085", 10)).isEqualTo("xxxxx...");
    }
}
