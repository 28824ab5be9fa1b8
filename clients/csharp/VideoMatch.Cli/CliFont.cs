using SkiaSharp;

namespace VideoMatch.Cli;

/// <summary>
/// The typeface of every label the CLI draws: DejaVu Sans, embedded (Fonts/), because the SkiaSharp native
/// library used on Linux has no font lookup, so <see cref="SKTypeface.Default"/> draws nothing there.
/// </summary>
internal static class CliFont
{
    private static readonly Lazy<SKTypeface> Embedded = new(Load);

    public static SKTypeface Typeface => Embedded.Value;

    /// <summary>A font of <paramref name="size"/> pixels; the caller disposes it.</summary>
    public static SKFont Create(float size) => new(Typeface, size) { Edging = SKFontEdging.Antialias };

    private static SKTypeface Load()
    {
        using var stream = typeof(CliFont).Assembly.GetManifestResourceStream("VideoMatch.Cli.Fonts.DejaVuSans-subset.ttf")
            ?? throw new InvalidOperationException("The CLI's embedded font is missing from its assembly.");
        return SKTypeface.FromStream(stream) ?? throw new InvalidOperationException("The CLI's embedded font could not be read.");
    }
}
