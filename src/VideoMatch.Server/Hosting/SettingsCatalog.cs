using System.Collections;
using System.Globalization;
using System.Reflection;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Inference;
using VideoMatch.Server.Observability;
using VideoMatch.Server.Security;

namespace VideoMatch.Server.Hosting;

/// <summary>
/// The server's own settings, read off its options types: what <c>--help</c> lists with the defaults, and what a
/// mistyped key is checked against (configuration binding ignores keys it does not know, so a typo would
/// otherwise start the server on a default without a word).
/// </summary>
internal static class SettingsCatalog
{
    private static readonly (string Section, Type Options)[] Sections =
    [
        (InferenceOptions.Section, typeof(InferenceOptions)),
        (BatchingOptions.Section, typeof(BatchingOptions)),
        (StreamingOptions.Section, typeof(StreamingOptions)),
        (LimitsOptions.Section, typeof(LimitsOptions)),
        (SecurityOptions.Section, typeof(SecurityOptions)),
        (MetricsOptions.Section, typeof(MetricsOptions)),
    ];

    /// <summary>
    /// Keys in the server's sections that no setting binds, and top-level sections one or two letters away from
    /// one of them, each with the nearest valid name. Empty when every key is known.
    /// </summary>
    public static IReadOnlyList<string> Unknown(IConfiguration configuration)
    {
        var problems = new List<string>();
        var sections = Sections.Select(s => s.Section).Append(ModelEntryOptions.Section).ToArray();
        foreach (var root in configuration.GetChildren())
        {
            if (!sections.Contains(root.Key, StringComparer.OrdinalIgnoreCase) && root.GetChildren().Any() &&
                Nearest(root.Key, sections) is { } near && Distance(root.Key, near) <= 2)
            {
                problems.Add($"unknown section '{root.Key}' (did you mean {near}?)");
            }
        }

        foreach (var (section, type) in Sections)
        {
            var names = Settings(type).Select(p => p.Name).ToArray();
            foreach (var child in configuration.GetSection(section).GetChildren())
            {
                if (!names.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
                {
                    problems.Add($"unknown setting '{section}:{child.Key}' (did you mean {section}:{Nearest(child.Key, names)}?)");
                }
            }
        }

        // Models:<name>:<key>, any name.
        var entryKeys = Settings(typeof(ModelEntryOptions)).Select(p => p.Name).ToArray();
        foreach (var model in configuration.GetSection(ModelEntryOptions.Section).GetChildren())
        {
            foreach (var child in model.GetChildren().Where(c => !entryKeys.Contains(c.Key, StringComparer.OrdinalIgnoreCase)))
            {
                problems.Add($"unknown setting '{ModelEntryOptions.Section}:{model.Key}:{child.Key}' (did you mean {ModelEntryOptions.Section}:{model.Key}:{Nearest(child.Key, entryKeys)}?)");
            }

            if (model.Value is not null && !model.GetChildren().Any())
            {
                problems.Add($"'{ModelEntryOptions.Section}:{model.Key}' is a value; give the model's folder as {ModelEntryOptions.Section}:{model.Key}:Path (empty: the embedded model)");
            }
        }

        return problems;
    }

    /// <summary>Every setting's key ("Section:Key"), for the docs check.</summary>
    public static IEnumerable<string> Keys() => Sections.SelectMany(s => Settings(s.Options).Select(p => $"{s.Section}:{p.Name}"));

    /// <summary>Every setting with its default, one per line, for <c>--help</c>.</summary>
    public static string Describe()
    {
        var text = new System.Text.StringBuilder();
        foreach (var (section, type) in Sections)
        {
            var defaults = Activator.CreateInstance(type)!;
            foreach (var property in Settings(type))
            {
                text.Append(CultureInfo.InvariantCulture, $"  --{section}:{property.Name}={Format(property.GetValue(defaults))}\n");
            }
        }

        // Several models: any number of names, each with these keys; unset ones take the Inference and Batching settings.
        var keys = string.Join(", ", Settings(typeof(ModelEntryOptions)).Skip(1).Select(p => $":{p.Name}"));
        text.Append(CultureInfo.InvariantCulture, $"  --{ModelEntryOptions.Section}:NAME:Path=FOLDER (repeat per model; empty: the embedded model; also {keys})\n");
        return text.ToString();
    }

    /// <summary>Every numeric setting (key and type; lists by their element type, at index 0), for the range checks' test.</summary>
    public static IEnumerable<(string Key, Type Type)> Numeric()
    {
        foreach (var (section, type) in Sections)
        {
            foreach (var property in Settings(type))
            {
                var list = property.PropertyType.IsGenericType && property.PropertyType.GetGenericTypeDefinition() == typeof(IList<>);
                var element = list ? property.PropertyType.GetGenericArguments()[0] : property.PropertyType;
                if (element == typeof(int) || element == typeof(long) || element == typeof(double))
                {
                    yield return (list ? $"{section}:{property.Name}:0" : $"{section}:{property.Name}", element);
                }
            }
        }
    }

    private static IEnumerable<PropertyInfo> Settings(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetMethod is { IsPublic: true } && (p.SetMethod is { IsPublic: true } || (p.PropertyType != typeof(string) && typeof(IEnumerable).IsAssignableFrom(p.PropertyType))));

    private static string Format(object? value) => value switch
    {
        null => "",
        string s => s,
        bool b => b ? "true" : "false",
        IEnumerable list => list.Cast<object>().Any() ? string.Join(",", list.Cast<object>()) : "(none; a list: Key:0=…, Key:1=…)",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static string Nearest(string key, IEnumerable<string> names) =>
        names.MinBy(name => Distance(key, name)) ?? "";

    /// <summary>Levenshtein distance, ignoring case.</summary>
    private static int Distance(string a, string b)
    {
        a = a.ToUpperInvariant();
        b = b.ToUpperInvariant();
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        var current = new int[b.Length + 1];
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
