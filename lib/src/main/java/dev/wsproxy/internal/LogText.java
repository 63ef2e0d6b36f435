package dev.wsproxy.internal;

import org.jspecify.annotations.Nullable;

/**
 * Text a peer wrote (a header value, a close reason, an exception message from a backend) made fit for one log line
 * or a listener's reason: printable ASCII only, and short. Jetty lets through header bytes 0x80 to 0xFF (obs-text,
 * read as ISO-8859-1), so a client's {@code Origin} can carry U+0085 (NEL, a line break for some log pipelines) and
 * U+009B (the 8-bit CSI escape), and a close reason can carry any UTF-8, {@code \n} and ESC included.
 */
final class LogText {

    private LogText() {
    }

    /**
     * {@code text} with every char outside printable ASCII (below U+0020, above U+007E) written as
     * <code>&#92;uXXXX</code>, cut to {@code max} chars followed by {@code ...} when longer; {@code text} itself
     * when it is both printable and short (no copy), {@code "null"} for {@code null}.
     */
    static String printable(@Nullable String text, int max) {
        if (text == null) {
            return "null";
        }
        int length = text.length();
        if (length <= max && isPrintable(text)) {
            return text;
        }
        StringBuilder out = new StringBuilder(Math.min(length, max) + 3);
        for (int i = 0; i < length; i++) {
            char c = text.charAt(i);
            boolean plain = c >= 0x20 && c <= 0x7E;
            if (out.length() + (plain ? 1 : 6) > max) {
                return out.append(CUT).toString();
            }
            if (plain) {
                out.append(c);
            } else {
                out.append("\\u").append(Character.forDigit(c >> 12, 16)).append(Character.forDigit(c >> 8 & 0xF, 16))
                        .append(Character.forDigit(c >> 4 & 0xF, 16)).append(Character.forDigit(c & 0xF, 16));
            }
        }
        return out.toString();
    }

    /**
     * {@code text} as {@link #printable} writes it, but at most {@code max} chars in all, the {@code ...} of a cut
     * included: for a bound promised to a reader (a listener's reason). Cut shorter only when it has to be.
     */
    static String within(String text, int max) {
        String printable = printable(text, max);
        return printable.length() <= max ? printable : printable(text, max - CUT.length());
    }

    private static final String CUT = "...";

    private static boolean isPrintable(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c < 0x20 || c > 0x7E) {
                return false;
            }
        }
        return true;
    }
}
