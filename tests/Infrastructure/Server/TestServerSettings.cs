using System.Globalization;
using System.Text.Json;

namespace VideoMatch.Tests;

/// <summary>The settings of tests/Infrastructure/test-server.json, which every test server starts with.</summary>
internal static class TestServerSettings
{
    private static readonly Lazy<IReadOnlyDictionary<string, string>> Loaded = new(Load);

    /// <summary>The embedded model's input width on test servers.</summary>
    public static int ModelWidth => int.Parse(All["Inference:EmbeddedWidth"], CultureInfo.InvariantCulture);

    /// <summary>The embedded model's input height on test servers.</summary>
    public static int ModelHeight => int.Parse(All["Inference:EmbeddedHeight"], CultureInfo.InvariantCulture);

    /// <summary>Every setting as configuration key ("Section:Key") and value.</summary>
    public static IReadOnlyDictionary<string, string> All => Loaded.Value;

    /// <summary>The settings as command-line arguments (<c>--Section:Key=value</c>), then <paramref name="more"/> (later ones win).</summary>
    public static string[] Arguments(params string[] more) => [.. All.Select(s => $"--{s.Key}={s.Value}"), .. more];

    private static Dictionary<string, string> Load()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "test-server.json");
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        Flatten(document.RootElement, "", settings);
        return settings;
    }

    private static void Flatten(JsonElement element, string prefix, Dictionary<string, string> settings)
    {
        foreach (var property in element.EnumerateObject())
        {
            if (property.Name.StartsWith("//", StringComparison.Ordinal))
            {
                continue;
            }

            var key = prefix.Length == 0 ? property.Name : $"{prefix}:{property.Name}";
            if (property.Value.ValueKind == JsonValueKind.Object)
            {
                Flatten(property.Value, key, settings);
            }
            else
            {
                settings[key] = property.Value.ValueKind switch
                {
                    JsonValueKind.True => "true",
                    JsonValueKind.False => "false",
                    _ => property.Value.ToString(),
                };
            }
        }
    }
}
