FROM python:3.11-slim
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends redis-tools && rm -rf /var/lib/apt/lists/*
COPY . /app
RUN pip install --no-cache-dir -e .
ENV INSTANCE_PATH=/data
VOLUME /data
EXPOSE 5000 2525
CMD ["gunicorn", "--bind", "0.0.0.0:5000", "--workers", "4", "cop_mail.web:create_app()"]
