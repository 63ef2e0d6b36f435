/**
 * The standalone launcher: wsproxy as a command-line program, configured by flags. See
 * {@link dev.wsproxy.examples.standalone.Main}.
 */
@NullMarked
package dev.wsproxy.examples.standalone;

import org.jspecify.annotations.NullMarked;
