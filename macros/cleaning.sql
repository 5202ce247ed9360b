{#- Text clean-up shared by the staging models. -#}

{% macro clean_text(column) -%}
trim({{ column }})
{%- endmacro %}

{% macro clean_email(column) -%}
lower(trim({{ column }}))
{%- endmacro %}
