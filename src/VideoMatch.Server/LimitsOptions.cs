using Microsoft.Extensions.Options;

namespace VideoMatch.Server;

/// <summary>Input limits. Bound from the <c>Limits</c> section.</summary>
public sealed class LimitsOptions
{
    public const string Section = "Limits";

    /// <summary>Largest accepted width or height, raw or decoded, in pixels. Default 8192.</summary>
    public int MaxImageDimension { get; set; } = 8192;

    /// <summary>
    /// Largest accepted width × height, raw or decoded (an encoded image is refused from its header, before any
    /// pixel is decoded). Default 8847360 (4096×2160, DCI 4K).
    /// </summary>
    public long MaxImagePixels { get; set; } = 4096L * 2160;

    /// <summary>
    /// Megabytes that image decodes may hold at once, across all calls; past it decodes wait (the stream's reader
    /// stops, so HTTP/2 flow control slows its sender). Each stream decodes one frame at a time. Default 256
    /// (seven decodes at the pixel limit).
    /// </summary>
    public int MaxDecodeMegabytes { get; set; } = 256;

    /// <summary>Largest gRPC message in bytes, both ways. Default 16 MiB (a 1920×1080 RGBA frame is 8.3 MB).</summary>
    public int MaxMessageBytes { get; set; } = 16 * 1024 * 1024;
}

internal sealed class LimitsOptionsValidator : IValidateOptions<LimitsOptions>
{
    public ValidateOptionsResult Validate(string? name, LimitsOptions options)
    {
        var problems = new List<string>();
        if (options.MaxImageDimension is < 32 or > 65535)
        {
            problems.Add($"Limits:MaxImageDimension must be 32..65535 (got {options.MaxImageDimension}).");
        }

        if (options.MaxImagePixels < 1024)
        {
            problems.Add($"Limits:MaxImagePixels must be at least 1024 (got {options.MaxImagePixels}).");
        }

        if (options.MaxDecodeMegabytes < 1)
        {
            problems.Add($"Limits:MaxDecodeMegabytes must be at least 1 (got {options.MaxDecodeMegabytes}).");
        }

        if (options.MaxMessageBytes < 64 * 1024)
        {
            problems.Add($"Limits:MaxMessageBytes must be at least 65536 (got {options.MaxMessageBytes}).");
        }

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
