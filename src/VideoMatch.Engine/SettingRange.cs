using System.Globalization;

namespace VideoMatch.Engine;

/// <summary>
/// The one way a numeric setting is checked: inside [min, max], or a one-line problem naming the setting, its range
/// and the value given. Every numeric setting has an upper bound too, so no value reaches arithmetic that overflows.
/// </summary>
public static class SettingRange
{
    public static void Check(List<string> problems, string setting, long value, long min, long max, string? meaning = null)
    {
        if (value < min || value > max)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"{setting} must be {min}..{max}{Meaning(meaning)} (got {value})."));
        }
    }

    public static void Check(List<string> problems, string setting, double value, double min, double max, string? meaning = null)
    {
        if (!(value >= min && value <= max))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"{setting} must be {min}..{max}{Meaning(meaning)} (got {value})."));
        }
    }

    private static string Meaning(string? meaning) => meaning is null ? "" : $" ({meaning})";
}
