using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace VideoMatch.Cli;

/// <summary>Options several commands share, each parsed once with a message that names the option and the range.</summary>
internal static class CliOptions
{
    /// <summary><c>--threshold</c>: a score in [0, 1); absent means the model's default.</summary>
    public static Option<float?> Threshold(string description) => new("--threshold", "-t")
    {
        Description = description,
        CustomParser = result => Number(result, "--threshold", "a score in [0, 1), for example 0.2", v => v is >= 0 and < 1) is { } value ? (float)value : null,
    };

    /// <summary><c>--max-matches</c>: 0 (all, the default) or more.</summary>
    public static Option<int> MaxMatches(string description) => new("--max-matches")
    {
        Description = description,
        CustomParser = result => (int)(Number(result, "--max-matches", "0 (all) or a positive count", v => v >= 0 && v <= int.MaxValue && v == Math.Floor(v)) ?? 0),
    };

    /// <summary><c>--estimate</c>: the transform to fit on the server.</summary>
    public static Option<string?> Estimate(string description)
    {
        var option = new Option<string?>("--estimate") { Description = description };
        option.AcceptOnlyFromAmong([.. Client.TransformModels.Names]);
        return option;
    }

    /// <summary><c>--letterbox</c>: keep each image's aspect ratio in the model input.</summary>
    public static Option<bool> Letterbox() => new("--letterbox")
    {
        Description = "Keep each image's aspect ratio in the model input (padding is not matched) instead of stretching it, as the Hugging Face processor does. Helps images of different shapes.",
    };

    /// <summary>A number option that must satisfy <paramref name="valid"/>; the error says what it takes.</summary>
    public static Option<double> Positive(string name, string description, double fallback, double max, string alias = "") =>
        new(name, alias.Length > 0 ? [alias] : [])
        {
            Description = description,
            DefaultValueFactory = _ => fallback,
            CustomParser = result => Number(result, name, $"a number above 0 and at most {max.ToString(CultureInfo.InvariantCulture)}", v => v > 0 && v <= max) ?? fallback,
        };

    /// <summary>A whole-number option in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static Option<int> Count(string name, string description, int fallback, int min, int max, string alias = "") =>
        new(name, alias.Length > 0 ? [alias] : [])
        {
            Description = description,
            DefaultValueFactory = _ => fallback,
            CustomParser = result => (int)(Number(result, name, $"a whole number from {min} to {max}", v => v >= min && v <= max && v == Math.Floor(v)) ?? fallback),
        };

    private static double? Number(ArgumentResult result, string name, string expected, Func<double, bool> valid)
    {
        if (result.Tokens.Count == 0)
        {
            return null;
        }

        var text = result.Tokens[^1].Value;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !valid(value))
        {
            result.AddError($"{name} '{text}' is not valid: give {expected}.");
            return null;
        }

        return value;
    }
}
